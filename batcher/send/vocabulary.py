"""What MetaStudio says a training job is: its states, operation-log types and commands,
and the trace each command leaves on the job's record when it takes effect (how batcher
tells, after a lost answer, whether it did).

Every list is the official SDK's, in its order (huaweicloudsdkmetastudio 3.1.219);
``tests/simulator/test_vocabulary.py`` fails when they drift.
"""

from __future__ import annotations

from dataclasses import dataclass


def _names(text: str) -> tuple[str, ...]:
    """The names in ``text``, in order (the long lists below are kept as blocks of text)."""
    return tuple(text.split())


#: Every job state the API documents (the ``state`` field, and List's ``state`` filter).
JOB_STATES: tuple[str, ...] = _names(
    """
    WAIT_FILE_UPLOAD AUTO_VERIFYING MANUAL_VERIFYING AUTO_VERIFY_FAILED MANUAL_VERIFY_FAILED
    MANUAL_VERIFY_SUCCESS WAIT_TRAINING_DATA_PREPROCESS TRAINING_DATA_PREPROCESSING
    TRAINING_DATA_PREPROCESS_FAILED TRAINING_DATA_PREPROCESS_SUCCESS TRAINING TRAIN_FAILED
    TRAIN_SUCCESS INFERENCE_DATA_PREPROCESSING INFERENCE_DATA_PREPROCESS_FAILED
    WAIT_MAIN_FILE_UPLOAD MANUAL_STOP_INFERENCE_DATA_PREPROCESS MANUAL_STOP_TRAIN
    MANUAL_STOP_TRAINING_DATA_PREPROCESS WAIT_ADMIN_CONFIRM WAIT_COMPILE COMPILING
    COMPILE_FAILED WAIT_GENERATE_ACTION WAIT_ARRANGE ACTION_GENERATE_DATA_PROCESSING
    MANUAL_STOP_ACTION_GENERATE_DATA_PROCESSING MANUAL_STOP_ACTION_GENERATE_ORI_PROCESSING
    ACTION_GENERATE_ORI_PROCESSING ACTION_GENERATE_DATA_FAILED ACTION_GENERATE_ORI_FAILED
    ACTION_GENERATE_ORI_SUCCESS GENERATE_ACTION_PREPROCESS_FAILED WAIT_ADMIN_CALIBRATION
    WAIT_ASSET_SYNC WAIT_GENERATE_ACTION_MARK ACTION_MARKING WAIT_USER_CONFIRM JOB_REJECT
    JOB_SUCCESS JOB_FINISH JOB_PENDING WAIT_TEST_VIDEO_CHECK TEST_VIDEO_CHECK_PROCESSING
    TEST_VIDEO_CHECK_SUCCESS TEST_VIDEO_CHECK_FAILED VIDEO_ANALYZE_PROCESSING
    VIDEO_ANALYZE_SUCCESS VIDEO_ANALYZE_FAILED ACTION_MARK_SUCCESS ACTION_MARK_FAILED
    ACTION_MARK_UPLOADED MANUL_STOP_ACTION_MARK
    """
)  # MANUL_STOP_ACTION_MARK: sic, the API's spelling

#: Every operation-log type the API documents (``OperationLogInfo.log_type``), in its order.
LOG_TYPES: tuple[str, ...] = _names(
    """
    USER_CREATE_JOD USER_VERIFYING_SUBMITTED SYSTEM_VERIFY_FAILED ADMIN_UPDATE_BEAUTY_LEVEL
    ADMIN_UPDATE_JOB_PRIORITY SYSTEM_VERIFY_SUCCESS ADMIN_VERIFY_SUCCESS ADMIN_VERIFY_FAILED
    SYSTEM_TRAIN_DATA_PREPROCESSING SYSTEM_TRAIN_DATA_PREPROCESS_FAILED
    SYSTEM_TRAIN_DATA_PREPROCESS_SUCCESS SYSTEM_ACTION_GENERATE_DATA_PREPROCESSING
    SYSTEM_ACTION_GENERATE_DATA_SUCCESS SYSTEM_ACTION_GENERATE_ORI_SUCCESS
    SYSTEM_ACTION_GENERATE_DATA_FAILED SYSTEM_ACTION_GENERATE_ORI_FAILED
    SYSTEM_ACTION_GENERATE_ORI_PREPROCESSING SYSTEM_TRAINING
    ADMIN_STOP_TRAINING_DATA_PREPROCESS ADMIN_STOP_BEAUTY_PREPROCESS
    ADMIN_STOP_INFERENCE_DATA_PREPROCESS ADMIN_STOP_TRAIN SYSTEM_TRAIN_FAILED
    SYSTEM_TRAIN_SUCCESS SYSTEM_INFERENCE_DATA_PREPROCESSING
    SYSTEM_INFERENCE_DATA_PREPROCESS_FAILED SYSTEM_INFERENCE_DATA_PREPROCESS_SUCCESS
    SYSTEM_JOB_SUCCESS ADMIN_MASK_UPLOADED ADMIN_UPDATE_VIDEO ADMIN_UPDATE_ACTION_VIDEO
    ADMIN_RESET ADMIN_ACCEPT USER_REPAIR SYSTEM_UPDATE_COVER SYSTEM_ANALYSE_FILE_INFO
    ADMIN_SET_SILENCE_REPEAT_NUM SYSTEM_MARKABLE_VIDEO SYSTEM_MASK_VERIFY_VIDEO
    SYSTEM_MASK_VERIFY_VIDEO_SUCCESS SYSTEM_MASK_VERIFY_VIDEO_FAILED
    SYSTEM_MARKABLE_VIDEO_SUCCESS SYSTEM_BEAUTY_PREPROCESSING SYSTEM_BEAUTY_PREPROCESS_FAILED
    ADMIN_CONFIRM_ACTION ADMIN_STOP_ACTION_GENERATE_DATA_PREPROCESS
    ADMIN_STOP_ACTION_GENERATE_ORI_PREPROCESS SYSTEM_BEAUTY_PREPROCESS_SUCCESS
    SYSTEM_COMPILE_FAILED SYSTEM_COMPILE_SUCCESS SYSTEM_MARKABLE_VIDEO_FAILED
    ADMIN_UPDATE_COMPILE ADMIN_UPDATE_INFERENCE_DATA_PROCESS_VIDEO SYSTEM_EXECUTE_COMPILE
    SYSTEM_EXECUTE_BEAUTY SYSTEM_MASK_VIDEO_AND_ACTION_TIME_SUCCESS
    SYSTEM_MASK_VIDEO_AND_ACTION_TIME_FAILED USER_UPDATE_VIDEO ADMIN_UPLOAD_JSON_DATA
    ADMIN_DELETE_JSON_DATA ADMIN_UPDATE_GENERAL_CONFIG ADMIN_MASK_ACTION_TIME STOP_COMPILE
    MAKE_TEST_VIDEO ADMIN_SET_FLEXUS_RETRY_COUNT USER_DELETE_JOB_VIDEO
    ADMIN_SET_VIDEO_ROTATION_ANGLE ADMIN_RE_SET_VIDEO_ROTATION_ANGLE
    SYSTEM_SET_VIDEO_ROTATION_ANGLE_SUCCESS SYSTEM_SET_VIDEO_ROTATION_ANGLE_FAILED
    COMPILE_JOB_IS_CONSUME RESTART_TEST_VIDEO_CHECK SKIP_TEST_VIDEO_CHECK WAIT_TEST_VIDEO_CHECK
    TEST_VIDEO_CHECK_PROCESSING TEST_VIDEO_CHECK_SUCCESS TEST_VIDEO_CHECK_FAILED
    REDO_INFERENCE_PREPROCESSING REDO_TRAINING_PREPROCESSING REDO_TRAINING
    REDO_ACTION_DATA_GENERATE REDO_ACTION_ORI_GENERATE VIDEO_ANALYZE_PROCESSING
    VIDEO_ANALYZE_SUCCESS VIDEO_ANALYZE_FAILED ADMIN_RESOLUTION_NORMALIZE
    SYSTEM_SET_RESOLUTION_NORMALIZE_SUCCESS SYSTEM_SET_RESOLUTION_NORMALIZE_FAILED
    SYSTEM_ACTION_MARK_PREPROCESS_FAILED SYSTEM_ACTION_MARK_PREPROCESSING
    SYSTEM_ACTION_MARK_PREPROCESS_SUCCESS REDO_ACTION_MARK CONFIRM_ACTION_MARK
    MANUL_STOP_ACTION_MARK TIME_OUT_RETRY
    """
)  # USER_CREATE_JOD, MANUL_STOP_ACTION_MARK: sic

#: The ``command`` values the API documents (``Execute2dModelTrainingCommandByUserReq``). A
#: manifest naming any other command is refused (with a "did you mean" for near misses): a
#: typo must not be sent three thousand times. CONFIRM_ACCEPT, CONFIRM_REJECT, CONFIRM_ANSWER,
#: CONFIRM_PENDING and CONFIRM_ACTIVE are for NA-whitelist tenants only.
KNOWN_COMMANDS: tuple[str, ...] = _names(
    """
    SUBMITVERIFYING CONFIRM_ACCEPT CONFIRM_REJECT CONFIRM_ANSWER CONFIRM_PENDING CONFIRM_ACTIVE
    GET_MULTIPART_UPLOADED CONFIRM_REPAIR CONFIRM_MULTIPART_UPLOADED
    GET_ACTION_VIDEO_MULTIPART_UPLOADED CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED
    CONFIRM_AUTHORIZATION_LETTER DELETE_JOB_VIDEO
    """
)

#: The ``command_message`` values the API documents; others are refused like commands.
KNOWN_COMMAND_MESSAGES: tuple[str, ...] = (
    "UPDATE_VIDEO",
    "UPLOAD_VIDEO",
    "CONFIRM_ACTION_VIDEO",
    "GET_ACTION_VIDEO_MULTIPART",
)

#: Who an operation-log entry says acted (``OperationLogInfo.operate_user``).
OPERATE_USERS: tuple[str, ...] = ("USER", "ADMIN", "SYSTEM")

#: What a ``comment_logs`` entry is (``CommentLogInfo.comment_type``).
COMMENT_TYPES: tuple[str, ...] = ("USER_REJECT", "USER_COMMENT", "ADMIN_COMMENT")


@dataclass(frozen=True, slots=True)
class Trace:
    """What a command leaves on the job's record when it takes effect."""

    #: Operation-log types it writes (with ``operate_user`` ``USER``).
    log_types: frozenset[str] = frozenset()
    #: ``comment_logs`` types it writes. Assumption: only when the command carries a
    #: comment, so their absence does not say it did not run.
    comment_types: frozenset[str] = frozenset()
    #: States that only this command, of everything a tenant or the system does, leads to.
    leads_to: frozenset[str] = frozenset()
    #: The states the command is accepted in and moves the job out of: a job found in any
    #: other state may have been moved by the attempt, whatever its log says so far.
    sent_in: frozenset[str] = frozenset()
    #: True for commands that only read (``GET_*``): sending them again is harmless.
    read_only: bool = False

    @property
    def readable(self) -> bool:
        """Whether the record can tell that the command took effect."""
        return bool(self.log_types or self.comment_types or self.leads_to)


_NONE = Trace()

#: The trace of each command; a ``command_message`` can refine it (see :func:`trace_of`).
TRACES: dict[str, Trace] = {
    "SUBMITVERIFYING": Trace(
        log_types=frozenset({"USER_VERIFYING_SUBMITTED"}), sent_in=frozenset({"WAIT_FILE_UPLOAD"})
    ),
    "CONFIRM_REPAIR": Trace(log_types=frozenset({"USER_REPAIR"})),
    "DELETE_JOB_VIDEO": Trace(log_types=frozenset({"USER_DELETE_JOB_VIDEO"})),
    # The user's verdict on a trained model (NA whitelist only): each ends in its own state.
    "CONFIRM_ACCEPT": Trace(leads_to=frozenset({"JOB_FINISH"})),
    "CONFIRM_REJECT": Trace(
        comment_types=frozenset({"USER_REJECT"}), leads_to=frozenset({"JOB_REJECT"})
    ),
    "CONFIRM_ANSWER": Trace(comment_types=frozenset({"USER_COMMENT"})),
    "CONFIRM_PENDING": Trace(leads_to=frozenset({"JOB_PENDING"})),
    "GET_MULTIPART_UPLOADED": Trace(read_only=True),
    "GET_ACTION_VIDEO_MULTIPART_UPLOADED": Trace(read_only=True),
}

#: ``(command, command_message)`` pairs whose trace differs from the command's own.
_MESSAGE_TRACES: dict[tuple[str, str], Trace] = {
    ("CONFIRM_MULTIPART_UPLOADED", "UPDATE_VIDEO"): Trace(
        log_types=frozenset({"USER_UPDATE_VIDEO"})
    ),
}


def trace_of(command: str, command_message: str | None = None) -> Trace:
    """The trace ``command`` (with ``command_message``) leaves when it takes effect.

    >>> trace_of("SUBMITVERIFYING").log_types
    frozenset({'USER_VERIFYING_SUBMITTED'})
    >>> trace_of("CONFIRM_MULTIPART_UPLOADED").readable
    False
    >>> sorted(trace_of("CONFIRM_MULTIPART_UPLOADED", "UPDATE_VIDEO").log_types)
    ['USER_UPDATE_VIDEO']
    """
    if command_message is not None:
        refined = _MESSAGE_TRACES.get((command, command_message))
        if refined is not None:
            return refined
    return TRACES.get(command, _NONE)
