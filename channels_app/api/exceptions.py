"""The one place where errors become REST API bodies."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from channels_app.errors import ApplicationError, InvalidFields


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})
    if isinstance(exc, ProtectedError):  # what the views' own checks missed (a row added meanwhile)
        return Response({"non_field_errors": ["It is still in use: it cannot be deleted."]}, status=400)
    if isinstance(exc, InvalidFields):
        return Response(exc.errors, status=exc.http_status)
    if isinstance(exc, ApplicationError):
        if exc.http_status == status.HTTP_400_BAD_REQUEST:
            return Response({exc.field or "non_field_errors": [exc.message]}, status=exc.http_status)
        body = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.http_status)
    return exception_handler(exc, context)


# Errors Django answers before (or outside) a DRF view, e.g. a URL that matches no route: JSON for the
# paths programs call, Django's HTML pages for the admin. Django uses these only while DEBUG is false.
MACHINE_PATHS = ("/api/", "/esp", "/nexus/")


def machine_error(request, status_code: int, message: str):
    if not request.path.startswith(MACHINE_PATHS):
        return None
    if request.path.startswith("/nexus/"):  # the Third-Party Messaging API's own error body
        return JsonResponse({"status": {"code": status_code, "message": message}}, status=status_code)
    return JsonResponse({"detail": message}, status=status_code)


def bad_request(request, exception):
    return machine_error(request, 400, "Bad request.") or defaults.bad_request(request, exception)


def page_not_found(request, exception):
    return machine_error(request, 404, "Not found.") or defaults.page_not_found(request, exception)


def server_error(request):
    return machine_error(request, 500, "Server error.") or defaults.server_error(request)
