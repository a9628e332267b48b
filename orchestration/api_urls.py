"""The REST API (``api/`` in ``orchestration.urls``): resources from a router, the OpenAPI schema and Swagger UI.

The schema (``api/schema/``) and the docs page (``api/docs/``, assets served
locally by drf-spectacular-sidecar) are public; everything else needs a token
or a session. Names are in the ``baton_api`` namespace (``baton_api:run-list``).
"""
from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from workguide.api import DelegationViewSet, WorkItemViewSet

from . import api_waits
from .api.common import BatonAPIView, api_not_found
from .api.views import OrchestrationViewSet, RunViewSet


def baton_endpoints_only(endpoints):
    """drf-spectacular preprocessing hook: the schema describes Baton's API, not the host's own DRF views."""
    return [endpoint for endpoint in endpoints if issubclass(getattr(endpoint[3], "cls", object), BatonAPIView)]


# The schema's title, enum names and contents are Baton's, whatever the
# host's SPECTACULAR_SETTINGS say (a host may have none).
SCHEMA_SETTINGS = {
    "TITLE": "Baton API",
    "DESCRIPTION": "Launch orchestrations, follow runs, and work the Work Guide.",
    "VERSION": "1.0.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["orchestration.api_urls.baton_endpoints_only"],
    # Several models have a "status" field with different choices; name each set.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "orchestration.models.runs.RunStatus",
        "StageStatusEnum": "orchestration.models.runs.StageStatus",
        "StepStatusEnum": "orchestration.models.runs.StepStatus",
        "WorkItemStatusEnum": "workguide.models.WorkItemStatus",
        "DefinitionStatusEnum": "flows.versioning.DefinitionStatus",
    },
}


class SchemaView(SpectacularAPIView):
    custom_settings = SCHEMA_SETTINGS
    permission_classes = []
    authentication_classes = []


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI with its assets from drf-spectacular-sidecar (no CDN), whatever SWAGGER_UI_DIST says.

    The split view serves its start-up script as a file (``?script``), so the
    page needs no inline script under the Content-Security-Policy.
    """

    title = SCHEMA_SETTINGS["TITLE"]
    url_name = "baton_api:schema"
    permission_classes = []
    authentication_classes = []

    @staticmethod
    def _swagger_ui_resource(filename):
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


@extend_schema(exclude=True)
class RootView(BatonAPIView, APIView):
    """``/api/``: where the resources are, and the schema and docs (a signed-in user's starting point;
    the browsable renderer makes each a link)."""

    RESOURCES = ("orchestration", "run", "work-item", "delegation")

    def get(self, request):
        links = {f"{name}s": reverse(f"baton_api:{name}-list", request=request) for name in self.RESOURCES}
        links["schema"] = reverse("baton_api:schema", request=request)
        links["docs"] = reverse("baton_api:api-docs", request=request)
        return Response(links)


app_name = "baton_api"
router = SimpleRouter()
router.register("orchestrations", OrchestrationViewSet, basename="orchestration")
router.register("runs", RunViewSet, basename="run")
router.register("work-items", WorkItemViewSet, basename="work-item")
router.register("delegations", DelegationViewSet, basename="delegation")

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
    *api_waits.urlpatterns(),  # pause, resume, events, withdraw a step, wait webhooks
    path("", RootView.as_view(), name="api-root"),
    path("", include(router.urls)),
    re_path(r"^", api_not_found),
]
