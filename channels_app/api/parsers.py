"""The REST API's JSON parser."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from channels_app.request_limits import nul_character_at


class JSONParser(parsers.JSONParser):
    """DRF's, except that a body nested deeper than Python's json module decodes (`[[[[...]]]]`) is a 400
    like any other malformed JSON: it raised RecursionError, a 500 anyone could cause (the token endpoint
    takes JSON before any authentication). A text with a NUL character (`\\u0000`), which PostgreSQL cannot
    store, is a 400 naming where it is (a lookup or a save with it was a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError("JSON parse error - the body is nested too deeply.") from error
        if where := nul_character_at(data):
            field = where.split(".")[0].split("[")[0] if isinstance(data, dict) else "non_field_errors"
            raise ValidationError({field: [f"{where!r} holds a NUL character (\\u0000), which cannot be stored."]})
        return data
