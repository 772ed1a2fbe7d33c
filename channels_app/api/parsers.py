"""The REST API's JSON parser."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's, except that a body nested deeper than Python's json module decodes (`[[[[...]]]]`) is a 400
    like any other malformed JSON: it raised RecursionError, a 500 anyone could cause (the token endpoint
    takes JSON before any authentication)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError("JSON parse error - the body is nested too deeply.") from error
