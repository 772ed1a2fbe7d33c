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
