from django.urls import path

from . import monitor_views

app_name = "monitor"
urlpatterns = [
    path("", monitor_views.run_list, name="runs"),
]
