from django.apps import AppConfig


class WorkguideConfig(AppConfig):
    name = "workguide"
    verbose_name = "Work Guide"
