"""The one place where errors become REST API bodies."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from channels_app.errors import ApplicationError


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})
    if isinstance(exc, ApplicationError):
        if exc.http_status == status.HTTP_400_BAD_REQUEST:
            return Response({exc.field or "non_field_errors": [exc.message]}, status=exc.http_status)
        body = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.http_status)
    return exception_handler(exc, context)
