"""The one error hierarchy. Each error knows its ESP code and HTTP status
(`../shared/design/API.md`) and names the offending field when there is one;
the API exception handler and the ESP dispatcher translate them in one place
each."""


class ApplicationError(Exception):
    esp_code = 900
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidParameter(ApplicationError):
    """A parameter is missing or incorrect (ESP 904)."""

    esp_code = 904
    http_status = 400


class NotFound(ApplicationError):
    """An unknown service, method, channel or standard response (ESP 902)."""

    esp_code = 902
    http_status = 404


class ExecutionFailed(ApplicationError):
    """The request was valid but could not be executed (ESP 920)."""

    esp_code = 920
    http_status = 422


class TransportUnreachable(ApplicationError):
    """The channel's transport could not be reached (ESP 901)."""

    esp_code = 901
    http_status = 502


class InvalidFields(InvalidParameter):
    """Several fields are incorrect at once: `errors` maps each field to its
    messages (the API answers them as DRF does; ESP names the first)."""

    def __init__(self, errors: dict[str, list[str]]):
        message = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
        super().__init__(message, field=next(iter(errors), None))
        self.errors = errors

    @classmethod
    def from_django(cls, error) -> "InvalidFields":
        """From a Django ValidationError raised by a model's full_clean()."""
        if hasattr(error, "error_dict"):
            return cls({name: list(messages) for name, messages in error.message_dict.items()})
        return cls({"non_field_errors": list(error.messages)})


class FieldCodesMissing(InvalidFields):
    """A standard response's field codes without a value (the one rendering rule,
    services.standard_responses.standard_response_render_for): the API answers
    400 naming `fields`, ESP 920, a campaign refuses the recipient."""

    def __init__(self, missing, *, response_id: str = ""):
        super().__init__({"fields": [f"{code} has no value" for code in missing]})
        self.missing = tuple(missing)
        self.message = "no value for field code(s) " + ", ".join(missing) + (
            f" of standard response {response_id}." if response_id else ".")


class PermissionDenied(ApplicationError):
    """The caller lacks a permission (HTTP 403; ESP 904 naming the permission)."""

    esp_code = 904
    http_status = 403


class Conflict(ApplicationError):
    """The request is valid but the object's state does not allow it now (HTTP 409)."""

    esp_code = 920
    http_status = 409


class CampaignStateConflict(Conflict):
    """A campaign's state does not allow the transition."""
