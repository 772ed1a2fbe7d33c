"""What the server refuses before a view reads a request.

* A NUL character in the URL (`%00`): 400. PostgreSQL can neither store nor
  compare text holding one, so a lookup by such an id or filter was a 500.
  JSON bodies are checked for it by their parsers (`nul_character_at`).
"""

from django.http import HttpResponse


def nul_character_at(value, path: str = "") -> str | None:
    """Where a parsed JSON value holds a NUL character (`\\u0000`), in a key or a text, e.g.
    "recipients[0].Contact.FirstName"; None when it holds none."""
    if isinstance(value, str):
        return path or "(the body)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key or (inner := nul_character_at(item, inner)):
                return inner
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if inner := nul_character_at(item, f"{path}[{index}]"):
                return inner
    return None


def _refused(request, status: int, message: str):
    from channels_app.api.exceptions import machine_error  # here: the API's parser imports this module

    return machine_error(request, status, message) or HttpResponse(message, status=status, content_type="text/plain")


class RequestLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return _refused(request, 400, "The URL holds a NUL character (%00).")
        return self.get_response(request)
