"""Orchestrations: definitions, the run engine, starts, Celery tasks, REST API.

Public Python API::

    orchestration.launch(api_name, inputs=None, record=None, user=None) -> OrchestrationRun
    orchestration.start_for(records) -> list[OrchestrationRun]
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
