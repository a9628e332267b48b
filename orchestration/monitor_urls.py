"""URLs of the run monitor, under ``monitor/`` in ``orchestration.urls`` (namespace ``monitor``)."""
from django.urls import path

from . import monitor_views

app_name = "monitor"
urlpatterns = [
    path("", monitor_views.run_list, name="runs"),
    path("runs/<int:run_id>/", monitor_views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", monitor_views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/steps/<str:step_name>/retry/", monitor_views.step_retry, name="step_retry"),
    path("runs/<int:run_id>/steps/<str:step_name>/skip/", monitor_views.step_skip, name="step_skip"),
    path("runs/<int:run_id>/pause/", monitor_views.run_pause, name="run_pause"),
    path("runs/<int:run_id>/resume/", monitor_views.run_resume, name="run_resume"),
    path("runs/<int:run_id>/steps/<str:step_name>/cancel/", monitor_views.step_cancel, name="step_cancel"),
    path("work-items/<int:item_id>/reassign/", monitor_views.work_item_reassign, name="reassign"),
]
