"""What every Baton API view shares: the error body, authentication, parsing, pagination, throttling.

Both APIs, orchestrations and runs (``orchestration.api.views``) and work
items (``workguide.api``), build their views on ``BatonAPIView`` and take
their documented error responses and query-parameter checks from here.

Every error body has one shape (``ErrorSerializer``): ``detail`` (a sentence),
``code`` (machine-readable) and ``errors`` (field path → messages, empty
unless the input was invalid). ``api_not_found`` gives the same body for any
other path under the API's prefix.
"""
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from flows.expressions import UnstorableValue, check_unicode

from ..conf import baton_settings
from ..starts import check_json_size


class Conflict(exceptions.APIException):
    """The request is well formed but the object's state does not allow it (409)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "conflict"


def flatten_errors(detail, prefix=""):
    """DRF error detail (nested dicts/lists) as ``{"a.b": ["message", ...]}``."""
    out = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key in ("__all__", api_settings.NON_FIELD_ERRORS_KEY):
                name = prefix or api_settings.NON_FIELD_ERRORS_KEY
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, (list, tuple)):
        if all(not isinstance(item, (dict, list, tuple)) for item in detail):
            out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for k, v in flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(detail)]
    return out


def django_errors(exc):
    """A Django ValidationError as a plain ``{field: [messages]}`` dict."""
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in DjangoValidationError(msgs).messages] for field, msgs in exc.error_dict.items()}
    return {api_settings.NON_FIELD_ERRORS_KEY: [str(m) for m in exc.messages]}


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"


def _size_limit_error(exc):
    """Django's refusal of an oversized body (raised while DRF reads it) as an
    API error; left alone, it becomes Django's HTML 400 page."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return RequestTooLarge(f"The request body is larger than {limit:,} bytes, the most the API accepts.")
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return exceptions.ParseError(f"The request has too many form fields or files: {exc}")
    return exc


def api_exception_handler(exc, context):
    """DRF's handler, with Django's ValidationError as a 400 and one body shape for every error."""
    exc = _size_limit_error(exc)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_errors(exc))
    elif isinstance(exc, RecursionError):  # a value nested so deep that checking it runs out of stack
        exc = exceptions.ParseError("The request holds values nested too deeply.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        first = next(iter(errors.items()), None)
        summary = "Invalid input."
        if first:
            field, messages = first
            where = "" if field == api_settings.NON_FIELD_ERRORS_KEY else f"{field}: "
            summary = f"Invalid input: {where}{messages[0]}" + (" (and more)" if len(errors) > 1 or len(messages) > 1 else "")
        response.data = {"detail": summary, "code": "invalid", "errors": errors}
        return response
    if isinstance(exc, Http404):
        code, detail = "not_found", "Not found."
    elif isinstance(exc, DjangoPermissionDenied):
        code, detail = "permission_denied", str(exc) or "You do not have permission to perform this action."
    else:
        detail = getattr(exc, "detail", None) or str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if isinstance(detail, (dict, list)):  # an APIException built with structured detail
            response.data = {"detail": "Request refused.", "code": "invalid", "errors": flatten_errors(detail)}
            return response
    response.data = {"detail": str(detail), "code": code if isinstance(code, str) else "error", "errors": {}}
    return response


class ErrorSerializer(serializers.Serializer):
    """Every error response: a sentence, a code, and the bad fields (for 400s)."""

    detail = serializers.CharField(help_text="What went wrong, in one sentence.")
    code = serializers.CharField(help_text="Machine-readable: invalid, not_authenticated, permission_denied, "
                                           "not_found, conflict, throttled, parse_error...")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field path → messages (inputs.amount, record, values.needed_by, non_field_errors...). "
                  "Empty unless the input was invalid.",
    )


def error_example(name, detail, code, errors=None, status_codes=None):
    return OpenApiExample(name, value={"detail": detail, "code": code, "errors": errors or {}},
                          response_only=True, status_codes=status_codes)


def error_responses(*codes, examples=()):
    """The documented error responses of an endpoint (401, 403, 404, 400, 409)."""
    words = {
        400: "Invalid input: ``errors`` names each bad field.",
        401: "Not authenticated (no or a bad token / session).",
        403: "Authenticated but not allowed.",
        404: "No such object, or not one you may see.",
        409: "The object's state does not allow this (already completed, claimed by another...).",
        429: "Too many requests (throttled).",
    }
    responses = {}
    for code in (401, 429, *codes):
        responses[code] = OpenApiResponse(
            ErrorSerializer, description=words[code],
            examples=[e for e in examples if not e.status_codes or str(code) in [str(c) for c in e.status_codes]],
        )
    return responses


class ApiPagination(PageNumberPagination):
    """``{count, next, previous, results}``; ``?page=``, ``?page_size=`` (at most 200)."""

    # Read when a request is paginated, not at import: a host may set no REST_FRAMEWORK at all.
    page_size = property(lambda self: api_settings.PAGE_SIZE or 50)
    page_size_query_param = "page_size"
    max_page_size = 200


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing with a 400 what would otherwise be a 500 now or later.

    Absurdly deep nesting (a RecursionError), and text holding a lone
    surrogate (``"\\ud800"`` is valid JSON but not Unicode that can be
    encoded): stored, it would make every page showing it fail.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            check_unicode(data)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply")
        except UnstorableValue as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}")
        return data


class BatonAPIView:
    """Mixin for every Baton API view: token or session auth, our error bodies, our pagination.

    Token comes first so an anonymous caller gets 401 with ``WWW-Authenticate: Token``.
    Session authentication enforces CSRF on unsafe methods, as DRF does.
    """

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]
    permission_classes = [IsAuthenticated]
    pagination_class = ApiPagination

    def get_exception_handler(self):
        return api_exception_handler

    # Throttle before checking permissions (DRF does it after), so that
    # anonymous callers are held to the anonymous rate even though every
    # request of theirs is refused.
    def check_permissions(self, request):
        self.check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        if getattr(request, "_baton_throttle_checked", False):
            return
        request._baton_throttle_checked = True
        super().check_throttles(request)


#: The ``lookup_value_regex`` of a view whose objects are found by id: the digits ``id_parameter`` documents.
ID_LOOKUP = r"[0-9]{1,18}"


def id_parameter(what):
    """The ``{id}`` path parameter: digits only (anything else is a 404 before any query)."""
    return OpenApiParameter("id", {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                            OpenApiParameter.PATH, description=f"The {what}'s id.")


def query_choice(request, name, choices, default=None):
    """A query parameter restricted to ``choices`` (400 naming the parameter otherwise)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    if value not in choices:
        raise exceptions.ValidationError({name: [f"must be one of {', '.join(choices)}"]})
    return value


def max_input_bytes():
    return baton_settings.BATON_MAX_INPUT_BYTES


def check_size(name, value):
    """400 when a JSON value is larger than ``BATON_MAX_INPUT_BYTES`` (the rule is ``starts.check_json_size``)."""
    check_json_size(name, value, exceptions.ValidationError)


@csrf_exempt  # nothing to protect; a POST must get the JSON 404, not Django's HTML CSRF page
def api_not_found(request, *args, **kwargs):
    """Any other path under /api/: a JSON 404 in the API's error shape (not Django's HTML page)."""
    return JsonResponse({"detail": "Not found.", "code": "not_found", "errors": {}}, status=404)
