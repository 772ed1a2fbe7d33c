"""JSON answers with parts already written as JSON text (the transcript PostgreSQL writes:
services/transcripts.py), put into the response as they are instead of decoded and encoded again."""

import json

from rest_framework import renderers


class RawJSON(str):
    """A value that is JSON text, written as it is by WithRawJSONRenderer."""


class WithRawJSONRenderer(renderers.JSONRenderer):
    """DRF's JSONRenderer, for an object whose last values may be RawJSON (only those: the others' order is
    the object's). The bytes are DRF's for the other values, the text as it is for the raw ones (with U+2028
    and U+2029 escaped, as DRF escapes them); indented (the browsable API, `; indent=`), everything is decoded
    and written by DRF."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, dict) or not any(isinstance(value, RawJSON) for value in data.values()):
            return super().render(data, accepted_media_type, renderer_context)
        raw = {key: value for key, value in data.items() if isinstance(value, RawJSON)}
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render({key: json.loads(value) if key in raw else value for key, value in data.items()},
                                  accepted_media_type, renderer_context)
        keys = list(data)
        if keys[len(keys) - len(raw):] != list(raw):
            raise ValueError("RawJSON values come after the others")
        head = super().render({key: data[key] for key in keys[:len(keys) - len(raw)]}, accepted_media_type,
                              renderer_context)
        parts = [head[:-1]]
        for key, value in raw.items():
            text = value.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
            parts.append(b"%s%s:%s" % (b"," if len(parts) > 1 or len(head) > 2 else b"",
                                       json.dumps(key).encode(), text.encode()))
        parts.append(b"}")
        return b"".join(parts)
