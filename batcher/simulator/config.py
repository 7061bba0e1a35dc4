"""The simulator's configuration, and the ``--jobs-file`` seed file.

The jobs file is JSON or YAML: a mapping of job_id to the state it starts in, or to the
job's fields::

    # jobs.yaml
    job-0001: WAIT_FILE_UPLOAD      # nothing uploaded yet
    job-0002: AUTO_VERIFY_FAILED    # Update it (PUT) first: then the upload commands work
    job-0003: WAIT_USER_CONFIRM     # trained (NA whitelist): CONFIRM_ACCEPT / CONFIRM_REJECT
    job-0004:
      state: WAIT_FILE_UPLOAD
      video_confirmed: true         # uploaded: SUBMITVERIFYING works
      batch_name: 华北-批次01
      tags: [vip]
    job-0005: {state: MANUAL_VERIFY_FAILED, reopened: true, video_confirmed: false}
                                    # updated: CONFIRM_MULTIPART_UPLOADED, SUBMITVERIFYING

(``{"job-0001": "WAIT_FILE_UPLOAD"}`` in JSON). States are the API's own (see
:class:`~batcher.simulator.record.JobState`). A seeded job exists in every project the
simulator is asked about, with a log that leads to its state; jobs a command names that
are not seeded start in ``WAIT_FILE_UPLOAD``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from batcher.entry import PATH_ID_RE
from batcher.errors import UsageError
from batcher.send.credentials import AkSkCredentials, credentials_from_env
from batcher.simulator.record import JobState

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
# A job id as manifests take it (pydantic's regex anchors ``$`` at the very end).
PathId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class JobSpec(BaseModel):
    """A seed job's fields in the jobs file (all optional but the state's default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: JobState = JobState("WAIT_FILE_UPLOAD")
    name: str | None = None
    batch_name: str | None = None
    tags: tuple[str, ...] = ()
    create_time: AwareDatetime | None = None
    last_update_time: AwareDatetime | None = None
    #: Whether the video (and the authorization letter) is confirmed; default: when the
    #: state is past WAIT_FILE_UPLOAD.
    video_confirmed: bool | None = None
    #: Updated after its failed review (Update and the new upload done): the upload commands,
    #: then SUBMITVERIFYING, are accepted.
    reopened: bool = False


class QuotaChange(BaseModel):
    """From ``after_seconds`` after the first request, ``per_second`` are left to this client.

    Written ``PER_SECOND@SECONDS`` on the command line and in config files:

    >>> QuotaChange.model_validate("12@5")
    QuotaChange(per_second=12, after_seconds=5.0)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: int = Field(ge=1)
    after_seconds: float = Field(ge=0.0)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        rate, at, rest = value.partition("@")
        if not at or not rest:
            raise ValueError(f"expected PER_SECOND@SECONDS (e.g. 12@5), got {value!r}")
        return {"per_second": rate.strip(), "after_seconds": rest.strip()}


class SimulatorConfig(BaseModel):
    """How the simulator behaves. Every field has a harmless default.

    With no ``credentials`` and no ``tokens`` the simulator accepts any well-formed auth
    (but still refuses a request with none).

    >>> SimulatorConfig(seed=7, error_rate=0.1, credentials={"AK": "SK"}).port
    0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    #: 0 picks a free port; the bound one is ``Simulator.port`` / ``Simulator.url``.
    port: int = Field(default=0, ge=0, le=65535)
    #: Seed of the one ``random.Random`` behind every fault and the jitter.
    seed: int | None = None
    latency_ms: float = Field(default=0.0, ge=0.0)
    #: Uniform extra delay in ``[0, latency_jitter_ms]``.
    latency_jitter_ms: float = Field(default=0.0, ge=0.0)
    error_rate: Rate = 0.0  #: share of requests answered 500 MSS.00000004
    throttle_rate: Rate = 0.0  #: share answered 429 APIGW.0308 at random
    #: Requests admitted a second; beyond it, 429 with Retry-After. None = no quota.
    quota: int | None = Field(default=None, ge=1)
    #: How the quota counts: per calendar second, or over any sliding second.
    quota_window: Literal["calendar", "sliding"] = "calendar"
    #: Changes of the quota left to this client, counted from the first request (another
    #: client starting to share it): ``["12@5"]`` = 12 a second from 5 s on.
    quota_changes: tuple[QuotaChange, ...] = ()
    drop_rate: Rate = 0.0  #: share whose connection is closed with no answer, before running
    #: Share of requests that reach the job (a 200 answer, the state possibly changed) and
    #: *then* lose their answer: "executed but the answer was lost".
    drop_after_execute_rate: Rate = 0.0
    #: AK -> SK accepted for SDK-HMAC-SHA256 signatures.
    credentials: dict[str, str] = Field(default_factory=dict, repr=False)
    #: When set, every signed request must carry it as ``X-Security-Token``.
    security_token: str | None = Field(default=None, repr=False)
    #: IAM tokens accepted as ``X-Auth-Token``.
    tokens: tuple[str, ...] = Field(default=(), repr=False)
    #: job_id -> the state it starts in (or its fields): the jobs file.
    jobs: dict[PathId, JobState | JobSpec] = Field(default_factory=dict)
    #: How far ``X-Sdk-Date`` may be from the simulator's clock.
    max_skew_seconds: float = Field(default=15 * 60, gt=0)
    #: Log one line per request (turn off when embedded in a run with its own output).
    log_requests: bool = True
    #: Share of command requests that take effect and whose answer is then held back for
    #: ``late_answer_ms``: a client with a shorter timeout never sees it.
    late_answer_rate: Rate = 0.0
    late_answer_ms: float = Field(default=60_000.0, ge=0.0)
    #: ``EXCUTE_FAILED`` answers also carry ``error_info`` {error_code, error_msg}, which the
    #: SDK's response model has (whether the API fills it for refusals is not documented).
    error_info: bool = False
    #: How many jobs to generate (``--jobs N``), spread over states, batches and tags;
    #: ``seed`` makes them reproducible.
    population: int = Field(default=0, ge=0, le=100_000)
    #: Generated jobs are created over this many days before ``population_until``.
    population_days: int = Field(default=30, ge=1, le=3650)
    #: The instant seeded times end at; None: 00:00 UTC of the day the simulator starts.
    population_until: AwareDatetime | None = None
    #: Keep the jobs in this file, shared with every simulator that opens it (see
    #: :mod:`batcher.simulator.world`); an existing file's seed wins over the fields above.
    world_file: Path | None = None

    @model_validator(mode="after")
    def _changes_need_a_quota(self) -> SimulatorConfig:
        if self.quota_changes and self.quota is None:
            raise ValueError("quota changes need a quota (--quota)")
        return self

    @property
    def open_auth(self) -> bool:
        """True when no credential is configured: any well-formed auth is accepted."""
        return not self.credentials and not self.tokens

    def secrets(self) -> tuple[str, ...]:
        """Every secret this config holds, for the log scrubber."""
        extra = (self.security_token,) if self.security_token else ()
        return (*self.credentials.values(), *self.tokens, *extra)

    def signing_credentials(self) -> AkSkCredentials | None:
        """The first configured AK/SK pair (with the security token), ready to sign with."""
        for ak, sk in self.credentials.items():
            return AkSkCredentials(ak=ak, sk=sk, security_token=self.security_token)
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **fields: Any) -> SimulatorConfig:
        """Credentials from the environment (as the CLI would), other fields as given.

        Reads ``HUAWEICLOUD_SDK_AK``/``_SK`` (fallback ``CLOUD_SDK_AK``/``_SK``),
        ``HUAWEICLOUD_SDK_SECURITY_TOKEN`` and ``METASTUDIO_AUTH_TOKEN``.

        >>> SimulatorConfig.from_env({"METASTUDIO_AUTH_TOKEN": "t"}).open_auth
        False
        """
        env = os.environ if environ is None else environ
        found = credentials_from_env(env)
        if isinstance(found, AkSkCredentials):
            fields.setdefault("credentials", {found.ak: found.sk})
            fields.setdefault("security_token", found.security_token)
        token = (env.get("METASTUDIO_AUTH_TOKEN") or "").strip()
        if token:
            fields.setdefault("tokens", (token,))
        return cls(**fields)


def load_jobs_file(path: str | Path) -> dict[str, JobState | JobSpec]:
    """Read a ``--jobs-file`` (JSON or YAML mapping job_id -> state, or -> fields).

    Raises :class:`~batcher.errors.UsageError` naming the file and the bad entry.

    >>> # load_jobs_file("jobs.yaml") -> {"job-0001": JobState.AUTO_VERIFY_FAILED}
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as error:
        raise UsageError(f"{path}: cannot read the jobs file: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid JSON or YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of job_id to state")
    jobs: dict[str, JobState | JobSpec] = {}
    for job_id, value in data.items():
        if not PATH_ID_RE.match(str(job_id)):
            raise UsageError(f"{path}: job_id {job_id!r} must be 1-64 of [A-Za-z0-9_-]")
        if isinstance(value, dict):
            try:
                jobs[str(job_id)] = JobSpec.model_validate(value)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise UsageError(f"{path}: job {job_id}: {where}: {first['msg']}") from None
            continue
        try:
            jobs[str(job_id)] = JobState(str(value))
        except ValueError:
            raise UsageError(
                f"{path}: job {job_id}: unknown state {value!r} "
                "(the API's states, e.g. WAIT_FILE_UPLOAD, AUTO_VERIFY_FAILED, WAIT_USER_CONFIRM)"
            ) from None
    return jobs
