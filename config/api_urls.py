"""The REST API under /api/: resources from a router, the OpenAPI schema and Swagger UI.

The schema (/api/schema/) and the docs page (/api/docs/, assets served
locally by drf-spectacular-sidecar) are public; everything else needs a token
or a session.
"""
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from orchestration.api import OrchestrationViewSet, RunViewSet, api_not_found
from workguide.api import WorkItemViewSet

router = SimpleRouter()
router.register("orchestrations", OrchestrationViewSet, basename="orchestration")
router.register("runs", RunViewSet, basename="run")
router.register("work-items", WorkItemViewSet, basename="work-item")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
    path(
        "docs/",
        # The split view serves its start-up script as a file (?script), so the
        # page needs no inline script under the Content-Security-Policy.
        SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="api-docs",
    ),
    path("", include(router.urls)),
    re_path(r"^", api_not_found),
]
