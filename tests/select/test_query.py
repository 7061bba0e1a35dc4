"""The List filters select offers: every one the official SDK's List request has, each
re-checked on the listed job where it carries the field."""

from __future__ import annotations

import pytest

from batcher.select.query import FILTERS, JobQuery, split_states

#: Request fields that are not filters: paging, order, and a header.
NOT_FILTERS = {"offset", "limit", "sort_key", "sort_dir", "x_app_user_id"}
NOON = "2026-11-01T12:00:00Z"


def test_every_filter_of_the_sdks_list_request_is_offered() -> None:
    sdk = pytest.importorskip("huaweicloudsdkmetastudio.v1.model.list2d_model_training_job_request")
    fields = set(sdk.List2dModelTrainingJobRequest.attribute_map.values()) - {"X-App-UserId"}
    assert {f.api_name for f in FILTERS} == fields - NOT_FILTERS
    assert {"sort_key", "sort_dir"} <= fields


def test_the_recheck_uses_every_field_a_listed_job_carries() -> None:
    sdk = pytest.importorskip("huaweicloudsdkmetastudio.v1.model.training_job_basic_info")
    carried = set(sdk.TrainingJobBasicInfo.attribute_map.values())
    checked = {f.field for f in FILTERS if f.field is not None}
    assert checked <= carried
    # Each filter left to the server has no field of its name on the listed job.
    assert not {f.api_name for f in FILTERS if f.field is None} & carried - {"name"}


@pytest.mark.parametrize(
    ("values", "job", "admitted"),
    [
        ({"job_id": "j1"}, {"job_id": "j2"}, False),
        ({"model_resolution": "4K"}, {"model_resolution": "4K"}, True),
        ({"is_live_copy": False}, {"is_live_copy": False}, True),
        ({"is_live_copy": False}, {}, False),  # a field the filter needs, missing
        ({"tag": "t"}, {"tags": ["s", "t"]}, True),
        ({"created_until": NOON}, {"create_time": "2026-11-01T20:00:00+08:00"}, True),
        ({"updated_since": NOON}, {"last_update_time": "2026-11-01T12:00:00"}, False),  # no zone
        ({"train_location": "x", "query_project_id": "p"}, {}, True),  # the server's to apply
    ],
)  # fmt: skip
def test_admits(values: dict[str, object], job: dict[str, object], admitted: bool) -> None:
    assert JobQuery(values).admits(job) is admitted


def test_problems_name_the_flag() -> None:
    query = JobQuery(
        {"is_flexus": "yes", "created_since": "2026-11-01T00:00:00", "states": ("TRAINNG",)},
        sort_key="asset_order",
        sort_dir="up",
    )
    found = "\n".join(query.problems())
    for words in ("--is-flexus takes true or false", "--created-since", "did you mean 'TRAINING'",
                  "--sort-key asset_order", "--sort-dir must be asc or desc"):  # fmt: skip
        assert words in found


@pytest.mark.parametrize(
    ("key", "direction", "order"),
    [(None, None, None), ("create_time", "asc", None), (None, "desc", ("create_time", True)),
     ("update_time", None, ("last_update_time", False))],
)  # fmt: skip
def test_order(key: str | None, direction: str | None, order: object) -> None:
    assert JobQuery(sort_key=key, sort_dir=direction).order() == order


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"job_id": ""}, "--job-id is empty"),
        ({"batch_name": " "}, "--batch-name is empty"),
        ({"states": ("",)}, "--state: an empty state"),
        ({"states": ("AUTO_VERIFY_FAILED", "", "WAIT_FILE_UPLOAD")}, "--state: an empty state"),
        ({"created_since": ""}, "--created-since is empty"),
        ({"created_since": "2026-11-02T00:00:00Z", "created_until": "2026-11-01T00:00:00Z"},
         "--created-since 2026-11-02T00:00:00Z is later than --created-until"),
        ({"updated_since": "2026-11-01T09:00:00+08:00", "updated_until": "2026-11-01T00:00:00Z"},
         "--updated-since 2026-11-01T09:00:00+08:00 is later than --updated-until"),
    ],
)  # fmt: skip
def test_a_filter_that_would_widen_or_empty_the_selection_is_a_problem(
    values: dict[str, object], words: str
) -> None:
    """An empty value is no filter at all (every job of the project); bounds the wrong way
    round select nothing and say nothing."""
    assert words in "\n".join(JobQuery(values).problems())


def test_bounds_in_order_and_states_split_are_no_problem() -> None:
    assert split_states(["A, B", "C"]) == ("A", "B", "C")
    assert split_states(["A,,B"]) == ("A", "", "B") and split_states([""]) == ("",)
    query = JobQuery({"created_since": NOON, "created_until": NOON, "states": ("TRAINING",)})
    assert query.problems() == []
