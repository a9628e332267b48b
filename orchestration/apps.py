from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self):
        # Django app-registry timing: these modules import models, which only ready() may do.
        from . import celery_hooks, checks, triggers  # noqa: F401 (checks registers the system checks)

        triggers.install()
        celery_hooks.join_beat("orchestration-sweep", "orchestration.tasks.sweep", "BATON_SWEEP_INTERVAL")
        celery_hooks.add_worker_steps()
