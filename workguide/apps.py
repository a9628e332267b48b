from django.apps import AppConfig


class WorkguideConfig(AppConfig):
    name = "workguide"
    verbose_name = "Work Guide"

    def ready(self):
        # Django app-registry timing: apps.py is loaded while the registry fills; ready() is the hook.
        from orchestration import celery_hooks

        celery_hooks.join_beat("workguide-due-dates", "workguide.tasks.check_due_dates", "BATON_DUE_CHECK_INTERVAL")
