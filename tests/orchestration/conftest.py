"""Fixtures the engine's tests share."""
import pytest

from orchestration import engine, worker
from tests.engine_builders import Recorder


@pytest.fixture
def fx():
    """Every transition in the test, whoever starts it, uses a recorder: sent steps wait in ``fx.sent``
    (run them with ``tests.engine_builders.drain``)."""
    recorder = Recorder()
    with engine.use_effects(recorder):
        yield recorder


@pytest.fixture
def sent(monkeypatch):
    """The step messages the engine publishes after commit, as (step run id, receipt or None), from any thread."""
    messages = []
    monkeypatch.setattr(worker, "send_step_message",
                        lambda step_run_id, countdown=None, receipt=None: messages.append((step_run_id, receipt)))
    return messages
