"""Every Baton page and the API, for a host's ``path(PREFIX, include("orchestration.urls"))``.

My Work under ``PREFIX + "workguide/"`` (namespace ``workguide``), the run
monitor under ``PREFIX + "monitor/"`` (``monitor``), the REST API under
``PREFIX + "api/"`` (``baton_api``). Baton builds every link with
``reverse()``, so any prefix works, the empty one included.
"""
from django.urls import include, path

urlpatterns = [
    path("workguide/", include("workguide.urls")),
    path("monitor/", include("orchestration.monitor.urls")),
    path("api/", include("orchestration.api_urls")),
    # The definitions' admin pages (django-nested-admin) load a script from here.
    path("nested_admin/", include("nested_admin.urls")),
]
