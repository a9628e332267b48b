"""Orchestrations: definitions, the run engine, starts, Celery tasks, REST API.

Public Python API::

    orchestration.launch(api_name, inputs=None, record=None, user=None) -> OrchestrationRun
    orchestration.start_for(records) -> list[OrchestrationRun]
    orchestration.send_event(run, name, data=None, keep=False) -> OrchestrationRun
    orchestration.send_event_for(record, name, data=None) -> list[OrchestrationRun]
"""


def launch(api_name, inputs=None, record=None, user=None):
    # Imported when called: the package is imported by ``orchestration.conf``'s importers (a settings
    # module), before Django's app registry is ready, and must load no model.
    from .starts import launch as _launch

    return _launch(api_name, inputs=inputs, record=record, user=user)


def start_for(records):
    # Imported when called, as in launch().
    from .starts import start_for as _start_for

    return _start_for(records)


def send_event(run, name, data=None, keep=False, *, user=None):
    """Deliver event ``name`` to ``run``'s wait steps (see ``orchestration/waits.py``).

    Raises ``orchestration.waits.NothingWaits`` when no step waits for it and
    ``keep`` is false; with ``keep`` the run's next wait for ``name`` takes it.
    """
    from .waits import send_event as _send_event

    return _send_event(run, name, data, keep, user=user)


def send_event_for(record, name, data=None, *, user=None):
    """Deliver event ``name`` to every run for ``record`` with a step waiting for it."""
    from .waits import send_event_for as _send_event_for

    return _send_event_for(record, name, data, user=user)
