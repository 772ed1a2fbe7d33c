"""The ESP dispatcher: a registry of (Service, Method) -> handler, and the one
place where errors become ESP error bodies (codes of the WhatsApp guide's
"Error responses" and API.md)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from channels_app.errors import ApplicationError, InvalidParameter, NotFound

logger = logging.getLogger(__name__)

DMS_APP_TYPE = "171"  # AppType of the DMS ("SocialMS" in IRD)
REQUEST_INVALID = 701


@dataclass(frozen=True)
class EspReply:
    http_status: int
    body: dict


Handler = Callable[[dict, dict, "EspContext"], dict]


@dataclass(frozen=True)
class EspContext:
    trace_id: str = ""
    user: object = None  # the authenticated caller: its tenants bound the channels it may use


HANDLERS: dict[tuple[str, str], Handler] = {}


def esp_method(service: str, method: str):
    def register(handler: Handler) -> Handler:
        HANDLERS[(service, method)] = handler
        return handler

    return register


def esp_error(reference_id, code: int, message: str, http_status: int) -> EspReply:
    return EspReply(http_status, {"ReferenceId": reference_id, "Error": {"Code": code, "Message": message}})


def esp_dispatch(request: object, context: EspContext) -> EspReply:
    """Validate the envelope, find the handler, run it, shape the reply."""
    if not isinstance(request, dict):
        return esp_error(None, 904, "Request incorrect: the body must be a JSON object.", 400)
    reference_id = request.get("ReferenceId")
    if reference_id is not None and (not isinstance(reference_id, int) or isinstance(reference_id, bool)):
        return esp_error(None, 904, "ReferenceId incorrect: must be an integer.", 400)
    service, method = request.get("Service"), request.get("Method")
    if not service or not method:
        message = "Request is invalid: Service or Method name was not specified"
        return esp_error(reference_id, REQUEST_INVALID, message, 400)
    if not isinstance(service, str) or not isinstance(method, str):
        return esp_error(reference_id, REQUEST_INVALID, "Request is invalid: Service and Method must be strings", 400)
    app_name, app_type = request.get("AppName"), request.get("AppType")
    if app_name is not None and not isinstance(app_name, str):
        return esp_error(reference_id, 904, "AppName incorrect: must be a string.", 400)
    if app_type is not None and (not isinstance(app_type, (str, int)) or isinstance(app_type, bool)):
        return esp_error(reference_id, 904, "AppType incorrect: must be a string or a number.", 400)
    if not app_name and str(app_type or "") != DMS_APP_TYPE:
        message = (
            f"AppType incorrect: {app_type!r} is not {DMS_APP_TYPE} (DMS)" if app_type
            else "AppName incorrect: AppName (or AppType 171) is required"
        )
        return esp_error(reference_id, 904, message, 400)
    handler = HANDLERS.get((service, method))
    if handler is None:
        known_service = any(s == service for s, _ in HANDLERS)
        what = f"{method} unknown method" if known_service else f"{service} unknown service"
        return esp_error(reference_id, NotFound.esp_code, f"{service}.{method}: {what}", NotFound.http_status)
    parameters = request.get("Parameters", {})
    user_data = request.get("UserData", {})
    try:
        if not isinstance(parameters, dict):
            raise InvalidParameter("Parameters incorrect: must be a KVList (JSON object).", field="Parameters")
        if not isinstance(user_data, dict):
            raise InvalidParameter("UserData incorrect: must be a KVList (JSON object).", field="UserData")
        result = handler(parameters, user_data, context)
    except ApplicationError as error:
        return esp_error(reference_id, error.esp_code, error.message, error.http_status)
    except Exception:
        logger.exception("ESP %s.%s failed", service, method)
        return esp_error(reference_id, 900, f"{service}.{method} generic error", 500)
    return EspReply(200, {"ReferenceId": reference_id, "Result": result})
