"""Turn a lost database connection into a clean 503 instead of a 500."""
from django.db import OperationalError, InterfaceError
from django.http import HttpResponse


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)) and "locked" not in str(exception):
            response = HttpResponse(
                "The database is unavailable for a moment; nothing was changed. Please try again.",
                status=503,
                content_type="text/plain",
            )
            response["Retry-After"] = "5"
            return response
        return None


def client_ip_address(request):
    """The client's address for sign-in throttling (django-axes).

    Behind a TLS proxy (``BEHIND_TLS_PROXY=true``) REMOTE_ADDR is the proxy's
    own address, the same for everyone; the last X-Forwarded-For entry is the
    one the proxy added, so a client cannot choose it. Elsewhere the header is
    ignored: anyone may send it.
    """
    from django.conf import settings

    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")
