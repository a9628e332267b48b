"""The REST API for orchestrations and runs (DRF), in four modules:

- ``common``: what every Baton API view shares (error body, authentication,
  parsing, pagination, throttling); the Work Guide's API uses it too;
- ``serializers``: orchestration versions, runs, request bodies;
- ``examples``: the example bodies of the OpenAPI schema;
- ``views``: ``OrchestrationViewSet`` and ``RunViewSet`` (the endpoints are
  listed there), mounted under ``api/`` by ``orchestration/api_urls.py``.

Every name the single ``orchestration/api.py`` module had is importable from
``orchestration.api`` as before.
"""
from .common import (  # noqa: F401
    ApiPagination,
    BatonAPIView,
    Conflict,
    ErrorSerializer,
    ID_LOOKUP,
    RequestTooLarge,
    SafeJSONParser,
    api_exception_handler,
    api_not_found,
    check_size,
    django_errors,
    error_example,
    error_responses,
    flatten_errors,
    id_parameter,
    max_input_bytes,
    query_choice,
)
from .serializers import (  # noqa: F401
    CancelSerializer,
    ConditionSerializer,
    LaunchSerializer,
    OrchestrationDetailSerializer,
    OrchestrationSerializer,
    OutcomeSerializer,
    PathElementSerializer,
    PathStepSerializer,
    RecordRefSerializer,
    RunDetailSerializer,
    RunEventSerializer,
    RunRecordField,
    RunSerializer,
    SkipSerializer,
    StageRunSerializer,
    StartSerializer,
    StepRunSerializer,
    VariableSerializer,
    condition_dict,
)
from .examples import (  # noqa: F401
    ORCHESTRATION_DETAIL_EXAMPLE,
    ORCHESTRATION_EXAMPLE,
    RUN_DETAIL_EXAMPLE,
    RUN_EXAMPLE,
)
from .views import (  # noqa: F401
    OrchestrationViewSet,
    RunViewSet,
    STEP_NAME,
    run_detail_queryset,
)
