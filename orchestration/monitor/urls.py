"""URLs of the run monitor, under ``monitor/`` in ``orchestration.urls`` (namespace ``monitor``)."""
from django.urls import path

from . import views

app_name = "monitor"
urlpatterns = [
    path("", views.run_list, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/steps/<str:step_name>/retry/", views.step_retry, name="step_retry"),
    path("runs/<int:run_id>/steps/<str:step_name>/skip/", views.step_skip, name="step_skip"),
    path("runs/<int:run_id>/pause/", views.run_pause, name="run_pause"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
    path("runs/<int:run_id>/steps/<str:step_name>/cancel/", views.step_cancel, name="step_cancel"),
    path("work-items/<int:item_id>/reassign/", views.work_item_reassign, name="reassign"),
]
