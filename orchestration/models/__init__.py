from .definitions import (  # noqa: F401
    END, AssigneeType, DecisionOutcome, Orchestration, Stage, StageExit, StageKind, StartType, StartWhen,
    Step, StepEntry, StepExit, StepType,
)
from .runs import (  # noqa: F401
    OPEN_STEP_STATUSES, EventKind, OrchestrationRun, PendingStart, RunEvent, RunStatus, StageRun, StageStatus, StepRun, StepStatus,
)
from .triggers import TriggerIndexVersion  # noqa: F401
from .builder import BuilderSnapshot  # noqa: F401
from .waits import KeptEvent, Timer, TimerPurpose, TimerState  # noqa: F401
