"""harness.history: what happened in a run, recorded as it happens, in one schema.

- ``events``    the typed events (the schema: each field spelled once)
- ``recorded``  what is recorded beside them: ``pg_stat_activity`` samples, the final state
- ``codec``     JSON derived from the dataclass fields; reading history and sample files
- ``writer``    the append-only writer (one ``write(2)`` per event) and process ids
- ``validate``  the invoke/complete discipline a history must keep to be judged

Imports only ``harness.errors`` (and the standard library).
"""

from harness.history.codec import (
    dumps,
    event_from_json,
    from_json,
    load_history,
    load_samples,
    parse_lines,
    to_json,
)
from harness.history.events import (
    COMPLETIONS,
    EVENT_TYPES,
    FREEZE_FAULTS,
    UNFREEZE_FAULTS,
    WRITE_FS,
    BackendEvent,
    CompletionType,
    ConnectionEvent,
    ErrorInfo,
    Event,
    FaultEvent,
    FaultF,
    ForeignEvent,
    ForeignF,
    ForeignKind,
    LockProbeEvent,
    NeighbourShape,
    OpEvent,
    OpF,
    OpType,
    QueryErrorEvent,
    QueryStartEvent,
    ReapEvent,
    ReapPassEvent,
    ReapPassF,
    ReapResult,
    RefusalEvent,
    StepEvent,
    TerminationCause,
    TerminationEvent,
    WorkerEvent,
    WorkerF,
)
from harness.history.recorded import ActivityRow, FinalState, Sample
from harness.history.validate import Problem, validate
from harness.history.writer import HistoryWriter, ProcessTable

__all__ = [
    "COMPLETIONS",
    "EVENT_TYPES",
    "FREEZE_FAULTS",
    "UNFREEZE_FAULTS",
    "WRITE_FS",
    "ActivityRow",
    "BackendEvent",
    "CompletionType",
    "ConnectionEvent",
    "ErrorInfo",
    "Event",
    "FaultEvent",
    "FaultF",
    "FinalState",
    "ForeignEvent",
    "ForeignF",
    "ForeignKind",
    "HistoryWriter",
    "LockProbeEvent",
    "NeighbourShape",
    "OpEvent",
    "OpF",
    "OpType",
    "Problem",
    "ProcessTable",
    "QueryErrorEvent",
    "QueryStartEvent",
    "ReapEvent",
    "ReapPassEvent",
    "ReapPassF",
    "ReapResult",
    "RefusalEvent",
    "Sample",
    "StepEvent",
    "TerminationCause",
    "TerminationEvent",
    "WorkerEvent",
    "WorkerF",
    "dumps",
    "event_from_json",
    "from_json",
    "load_history",
    "load_samples",
    "parse_lines",
    "to_json",
    "validate",
]
