"""Fixtures the engine's tests share."""
import pytest

from orchestration import engine
from tests.engine_builders import Recorder


@pytest.fixture
def fx():
    """Every transition in the test, whoever starts it, uses a recorder: sent steps wait in ``fx.sent``
    (run them with ``tests.engine_builders.drain``)."""
    recorder = Recorder()
    with engine.use_effects(recorder):
        yield recorder
