"""What the server refuses before a view reads a request.

* A body over the limit: 413 before anything reads it. Django checks
  DATA_UPLOAD_MAX_MEMORY_SIZE only where it reads the body itself
  (`request.body`, form fields); DRF's parsers and the ESP and nexus views
  read the stream as it comes, and uploaded files stream to disk with no limit
  at all. The declared Content-Length is checked instead (a chunked body has
  none, and Django reads no body without one).
* A NUL character in the URL (`%00`): 400. PostgreSQL can neither store nor
  compare text holding one, so a lookup by such an id or filter was a 500.
  Bodies are checked by their parsers with the text rules
  (channels_app/text_rules.py).
"""

from django.conf import settings
from django.http import HttpResponse


def body_limit(request) -> int | None:
    """Bytes a request may send: uploads (multipart) up to UPLOAD_MAX_SIZE, any other body up to
    DATA_UPLOAD_MAX_MEMORY_SIZE (None: no limit)."""
    if request.content_type == "multipart/form-data":
        return settings.UPLOAD_MAX_SIZE
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _refused(request, status: int, message: str):
    from channels_app.api.exceptions import machine_error  # here: the API's parser imports this module

    return machine_error(request, status, message) or HttpResponse(message, status=status, content_type="text/plain")


class RequestLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = body_limit(request)
        if limit is not None and length > limit:
            return _refused(request, 413, f"The request body is {length} bytes; at most {limit} are accepted.")
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return _refused(request, 400, "The URL holds a NUL character (%00).")
        return self.get_response(request)
