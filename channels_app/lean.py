"""The hot paths (`POST /nexus/...`, `POST /esp`) served past the middleware and DRF machinery they do not use
(issue 25, lever 2).

`LeanPathsMiddleware` sits right after the middleware every request needs (the trace id, the security headers,
the request limits: project/settings.py) and answers a POST to a URL whose view carries a `lean_post` handler
by calling that handler itself: sessions, CSRF, authentication, OTP, messages, axes and DRF's request, content
negotiation and exception handling are skipped, since these doors use none of them (the signature of the body or
a token authenticate; no session, cookie or form is read). What the skipped steps put on these answers is put
here, so that the answers stay byte for byte those of the DRF views (tests/test_lean_paths.py):

* DRF's headers `Allow` (the view's methods) and `Vary: Accept`; the clickjacking middleware's
  `X-Frame-Options: DENY`; the common middleware's `Content-Length`;
* the audit log's request (channels_app/audit.py), for the user and address of any entry written meanwhile.

A request whose `Accept` header asks for anything else than JSON takes the full path (DRF then answers 406, or
its browsable page), as does every other method (405, OPTIONS): those answers come from the DRF view, as before,
which also keeps documenting the door in the OpenAPI schema.

JSON is read with orjson, and, where orjson refuses a body (NaN, a lone surrogate, UTF-16, a byte order mark) or
holds a float (orjson reads an integer past 64 bits as one), with the json module as before, so that what is
taken and the errors are unchanged. Bodies are written with orjson when they hold only strings, integers,
booleans, None, lists and dicts (then its bytes are those of DRF's renderer, U+2028 and U+2029 escaped as DRF
escapes them); anything else with DRF's encoder.
"""

import json

import orjson
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from rest_framework.utils.encoders import JSONEncoder

from channels_app.audit import AuditContextMiddleware

# The doors with a lean POST: a cheap test before the URL is resolved a second time.
LEAN_PREFIXES = ("/nexus/", "/esp", "/api/interactions/")
# Accept values for which DRF's content negotiation picks its JSON renderer with no parameter.
JSON_ACCEPTED = frozenset({"", "*/*", "application/json", "application/*"})


def _has_float(value) -> bool:
    """Whether a float is anywhere in a JSON value (walked without recursion: a body may nest deeply)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is list:
            pending.extend(item)
        elif kind is dict:
            pending.extend(item.values())
    return False


def json_loads_strict(body: bytes):
    """The body's JSON value where orjson reads it as json.loads(body.decode()) does, else None (the caller
    reads it with the json module, for its value or its error: NaN, a lone surrogate, a byte order mark, an
    integer past 64 bits, which orjson reads as a float)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return None if _has_float(value) else value


def json_loads(body: bytes):
    """The body's JSON value, as json.loads(body) reads it (its errors too), orjson's speed where it can."""
    value = json_loads_strict(body)
    return json.loads(body) if value is None else value


def json_loads_texts_kept(body: bytes) -> tuple[object, bool]:
    """The body's JSON value (json_loads's), and whether every text in it is known to keep the text rules
    (channels_app/text_rules.py) without walking it: orjson read it, and orjson refuses a lone surrogate and a raw
    NUL, so that a NUL could only come from a `\\u0000` escape, which is not in the bytes. False says nothing:
    the caller walks the value (text_rule_broken_at) as before."""
    value = json_loads_strict(body)
    if value is None:
        return json.loads(body), False
    return value, b"\\u0000" not in body


def _plain(value) -> bool:
    """Whether a body holds only what orjson writes as DRF's renderer does (walked without recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is list:
            pending.extend(item)
        elif kind is dict:
            if not all(type(key) is str for key in item):
                return False
            pending.extend(item.values())
        elif not (kind is str or kind is int or kind is bool or item is None):
            return False
    return True


def json_bytes(data) -> bytes:
    """The bytes DRF's JSONRenderer writes for `data` (compact, UTF-8, U+2028/U+2029 escaped)."""
    if _plain(data):
        try:
            content = orjson.dumps(data)
        except orjson.JSONEncodeError:  # an integer past 64 bits, a lone surrogate
            content = None
        if content is not None:
            if b"\xe2\x80\xa8" in content or b"\xe2\x80\xa9" in content:
                content = content.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
            return content
    text = json.dumps(data, cls=JSONEncoder, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def json_response(data, *, status: int = 200, allow: str = "POST, OPTIONS", headers: dict | None = None):
    """The answer DRF's Response, rendered as JSON, gave through the middleware list."""
    content = json_bytes(data)
    response = HttpResponse(content, status=status, content_type="application/json")
    response.headers["Allow"] = allow
    response.headers["Vary"] = "Accept"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Length"] = str(len(content))
    return response


def lean_post(view, handler, takes=None):
    """`view` (a DRF view's as_view()), with `handler(request, **kwargs)` answering its POSTs past the
    middleware (LeanPathsMiddleware), those for which `takes(request)` is true when given."""
    view.lean_post = handler
    view.lean_takes = takes
    return view


def _accepts_json(request) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    return all(part.strip() in JSON_ACCEPTED for part in accept.split(","))


class LeanPathsMiddleware:
    """A POST to a door with a `lean_post` handler is answered by it; everything else goes on."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.audit = AuditContextMiddleware(self._lean)

    def __call__(self, request):
        if request.method == "POST" and request.path_info.startswith(LEAN_PREFIXES) and _accepts_json(request):
            try:
                match = resolve(request.path_info)
            except Resolver404:
                match = None
            handler = getattr(match.func, "lean_post", None) if match is not None else None
            takes = getattr(match.func, "lean_takes", None) if handler is not None else None
            if handler is not None and (takes is None or takes(request)):
                request.resolver_match = match
                request.lean_handler = handler
                return self.audit(request)
        return self.get_response(request)

    @staticmethod
    def _lean(request):
        return request.lean_handler(request, *request.resolver_match.args, **request.resolver_match.kwargs)
