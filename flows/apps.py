from django.apps import AppConfig

from . import actions


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self):
        actions.import_action_modules()
