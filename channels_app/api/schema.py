"""The OpenAPI document's error responses.

drf-spectacular documents only the success response of an operation; the
errors DRF and `api_exception_handler` answer with (400 naming the fields,
401, 403, 404, 413, 415, 429) are added here, so that clients and the fuzzer
(`bench/fuzz.py`) know every status an operation can answer. A status an
operation documents itself (ESP, nexus) is left as it is.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The parameter at fault, when there is one.")


# {"<field>": ["message", ...], ...}; nested serializers nest it, lists of them list it.
VALIDATION_ERROR = {
    "type": "object",
    "additionalProperties": {},
    "description": 'Errors by field: {"<field>": ["message"]} ("non_field_errors" for the whole request).',
}


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, body in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(body, code, direction=direction)
        return responses

    def _error_responses(self) -> dict:
        view, has_body = self.view, self.method in ("POST", "PUT", "PATCH")
        takes_query = bool(self._get_filter_parameters() or self._get_pagination_parameters()
                           or any(getattr(p, "location", "") == "query" for p in self.get_override_parameters()))
        errors = {}
        if has_body or takes_query or self.method == "DELETE":  # a delete may be refused (a tenant with channels)
            errors["400"] = OpenApiResponse(VALIDATION_ERROR, "Invalid input; the body names the fields.")
        if view.get_authenticators():
            errors["401"] = OpenApiResponse(ErrorSerializer, "No token, or a wrong one (or wrong credentials).")
        staff_only = any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in view.get_permissions())
        if staff_only and self.method not in ("GET", "HEAD", "OPTIONS"):
            errors["403"] = OpenApiResponse(ErrorSerializer, "Only staff write configuration.")
        if "{" in self.path or self._get_pagination_parameters():
            errors["404"] = OpenApiResponse(ErrorSerializer, "No such object (or a page past the last).")
        if has_body and "*/*" not in self.map_parsers():
            errors["413"] = OpenApiResponse(ErrorSerializer, "A body over the size limit (not read).")
            errors["415"] = OpenApiResponse(ErrorSerializer, "A body of a media type the operation does not take.")
        if view.get_throttles():
            errors["429"] = OpenApiResponse(ErrorSerializer, "Too many attempts; retry after Retry-After seconds.")
        return errors
