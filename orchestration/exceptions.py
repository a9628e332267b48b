"""The engine's exceptions, in a module of their own so anyone may raise or catch them.

``orchestration.engine`` re-exports both, so ``from orchestration.engine
import EngineError`` keeps working; code that only needs an exception (step
preparation, the Work Guide) imports it from here without loading the
engine.
"""


class EngineError(Exception):
    """An operator action that does not apply to the run's current state."""


class StepFailure(Exception):
    """Raised inside the engine when a step cannot start (bad mapping, assignee...)."""
