"""The REST API's parsers: JSON, and multipart for uploads."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from channels_app.text_rules import escaped, text_rule_broken, text_rule_broken_at, text_rule_message


class JSONParser(parsers.JSONParser):
    """DRF's, except that a body nested deeper than Python's json module decodes (`[[[[...]]]]`) is a 400
    like any other malformed JSON: it raised RecursionError, a 500 anyone could cause (the token endpoint
    takes JSON before any authentication). A text that breaks the text rules (a NUL character, a lone
    surrogate: channels_app/text_rules.py) is a 400 naming where it is (a lookup or a save with it was a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError("JSON parse error - the body is nested too deeply.") from error
        return self.check(data)

    @staticmethod
    def check(data):
        """`data` as read, or the 400 of a text that breaks the text rules."""
        if found := text_rule_broken_at(data):
            where, broken = found
            field = where.split(".")[0].split("[")[0] if isinstance(data, dict) else "non_field_errors"
            raise ValidationError({field: [text_rule_message(where, broken)]})
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's, except that a form field that breaks the text rules is a 400 naming it: DRF's text fields
    refuse a NUL character, but a lookup field (a campaign's `channel`) took it to PostgreSQL, a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        for name, values in parsed.data.lists():
            for text in (name, *values):
                if isinstance(text, str) and (broken := text_rule_broken(text)):
                    raise ValidationError({escaped(name): [text_rule_message(escaped(name), broken)]})
        return parsed
