"""Which effects the engine uses: ``BATON_EFFECTS`` (checked at start-up), ``engine.use_effects``, a caller's own."""
import pytest

from orchestration import checks, engine, transition
from orchestration.models import StepRun
from tests.engine_builders import Recorder, bg, noop_flow, orchestration
from workguide.effects import WorkGuideEffects


class CountingEffects(Recorder):
    """Named by BATON_EFFECTS in a test: every instance the engine makes is counted."""

    made = 0

    def __init__(self):
        super().__init__()
        CountingEffects.made += 1
        CountingEffects.last = self


class NoWorkItems:
    def send_step(self, step_run):
        pass


def one_background_step():
    noop_flow("effect_probe")
    return orchestration([{"name": "one", "steps": [bg("s", "effect_probe")]}])


def test_the_default_is_the_work_guides_effects():
    assert isinstance(transition.default_effects(), WorkGuideEffects)


@pytest.mark.django_db
def test_the_engine_makes_the_class_baton_effects_names(settings):
    orch = one_background_step()
    settings.BATON_EFFECTS = f"{__name__}.CountingEffects"
    before = CountingEffects.made
    run = engine.start_run(orch)
    assert CountingEffects.made == before + 1
    assert CountingEffects.last.sent == [StepRun.objects.get(run=run).pk]


@pytest.mark.django_db
def test_use_effects_sets_them_for_a_block_and_a_callers_own_still_wins():
    orch = one_background_step()
    seen, own = Recorder(), Recorder()
    with engine.use_effects(seen):
        first = engine.start_run(orch)
        second = engine.start_run(orch, effects=own)
    third_effects = transition.default_effects()
    assert seen.sent == [StepRun.objects.get(run=first).pk]
    assert own.sent == [StepRun.objects.get(run=second).pk]
    assert not isinstance(third_effects, Recorder)  # the block is over: BATON_EFFECTS again


@pytest.mark.parametrize("path, says", [
    ("workguide.effects.NoSuchEffects", "cannot be imported"),
    ("no_such_package.Effects", "cannot be imported"),
    (f"{__name__}.NoWorkItems", "lacks open_work_item, close_work_items"),
    (f"{__name__}.one_background_step", "is not a class"),
    ("workguide.effects", "is not a class"),
])
def test_a_bad_baton_effects_is_an_error_naming_the_path(settings, path, says):
    settings.BATON_EFFECTS = path
    errors = [e for e in checks.check_baton_settings() if e.id == "baton.E008"]
    assert len(errors) == 1
    assert repr(path) in errors[0].msg and says in errors[0].msg
    assert "BATON_EFFECTS" in errors[0].hint


def test_the_default_and_a_class_with_the_three_methods_pass_the_check(settings):
    assert [e for e in checks.check_baton_settings() if e.id == "baton.E008"] == []
    settings.BATON_EFFECTS = f"{__name__}.CountingEffects"
    assert [e for e in checks.check_baton_settings() if e.id == "baton.E008"] == []
