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
