"""The logs of every process (web, dispatcher, workers, beat): readable text by default, one JSON object a line
on standard output with LOG_FORMAT=json (structlog's formatter on the standard library's logging, so the lines
of Django, Celery and gunicorn come out the same way as ours). docs/OPERATIONS.md, "Logs".

This module imports nothing of Django: gunicorn's configuration (gunicorn.conf.py) uses it before Django starts.

A JSON line holds `time` (UTC, ISO 8601), `level`, `logger`, `event` (the message), `process` (web,
dispatcher, worker, beat or the command), `pid`, `host`, and whatever is bound to the context where it was
written (channels_app/traces.py): `trace_id` (X-B3-TraceId), `tenant_id`, `channel_id`, `interaction_id`,
`message_id`.
Secrets never appear (a field named like one, a bearer token or a `secret=` in a message), phone numbers and
texts are masked unless LOG_PERSONAL_DATA=true.
"""

import logging
import os
import re
import socket
import sys

import structlog

JSON = "json"


def log_format() -> str:
    value = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"
    if value not in {"text", JSON}:
        raise ValueError(f"LOG_FORMAT is 'text' or 'json', not {value!r}.")
    return value


def personal_data_allowed() -> bool:
    return os.environ.get("LOG_PERSONAL_DATA", "").strip().lower() in {"1", "true", "yes", "on"}


def process_role(argv: list[str] | None = None) -> str:
    """What this process is, from its command line (LOG_PROCESS overrides it)."""
    if os.environ.get("LOG_PROCESS"):
        return os.environ["LOG_PROCESS"]
    argv = argv if argv is not None else sys.argv
    words = [os.path.basename(word) for word in argv]
    line = " ".join(argv[:1] + words)  # `python -m celery`: argv[0] is .../celery/__main__.py
    if "gunicorn" in line:
        return "web"
    if "celery" in line:
        return "beat" if "beat" in words else "worker" if "worker" in words else "celery"
    if "dispatch" in words:
        return "dispatcher"
    for word in words[1:]:
        if not word.startswith("-") and word not in {"manage.py", "__main__.py", "django"}:
            return word
    return words[0] if words else "python"


# --- what never leaves the process ------------------------------------------------------------------------------

SECRET_FIELD = re.compile(r"secret|password|passwd|token|authorization|api_?key|signature|cookie|credential",
                          re.IGNORECASE)
HIDDEN = "[hidden]"
# Fields that carry a customer's address or words.
PHONE_FIELDS = {"client_id", "phone", "phone_number", "to", "from", "msisdn", "recipient", "wa_id"}
TEXT_FIELDS = {"text", "body", "payload", "content", "message_text", "subject"}
SECRET_IN_TEXT = [
    (re.compile(r"\b(Bearer|Token|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + HIDDEN),
    (re.compile(r"\b(secret|password|passwd|token|api_?key|access_?key|signature)([\"']?\s*[=:]\s*[\"']?)"
                r"[^\s\"'&,;]+", re.IGNORECASE), r"\1\2" + HIDDEN),
    (re.compile(r"(sha(?:1|256)=)[0-9a-f]{16,}", re.IGNORECASE), r"\1" + HIDDEN),
]
# A phone number as customers' addresses are written: E.164 (+ and 8 to 15 digits) or WhatsApp's wa_id (the same
# digits without +), standing alone.
PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+?\d{8,15}(?![\w])")


def mask_phone(value: str) -> str:
    """+4915112345678 -> +49*********78: enough to tell two apart in an incident, not to call anyone."""
    value = str(value)
    if len(value) <= 5:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]


def mask_text(value) -> str:
    return f"[{len(str(value))} characters]"


def scrub(text: str, *, personal: bool) -> str:
    for pattern, replacement in SECRET_IN_TEXT:
        text = pattern.sub(replacement, text)
    if not personal:
        text = PHONE_IN_TEXT.sub(lambda match: mask_phone(match.group(0)), text)
    return text


def _clean(key: str, value, personal: bool):
    if value is None:
        return value
    if SECRET_FIELD.search(key) and key != "trace_id":
        return HIDDEN
    if not personal and key in PHONE_FIELDS:
        return mask_phone(value)
    if not personal and key in TEXT_FIELDS:
        return mask_text(value)
    if isinstance(value, str):  # ids are ours (a channel's id may be the business's own number)
        return scrub(value, personal=personal or key.endswith("_id"))
    if isinstance(value, dict):  # Celery's `data`, a payload given as a field
        return {inner: _clean(str(inner), item, personal) for inner, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, item, personal) for item in value]
    return value


def redact(_logger, _method, event_dict: dict) -> dict:
    """structlog processor: secrets hidden always, phone numbers and texts masked unless LOG_PERSONAL_DATA."""
    personal = personal_data_allowed()
    for key, value in list(event_dict.items()):
        if not key.startswith("_"):
            event_dict[key] = _clean(key, value, personal)
    return event_dict


# --- the fields of a line -----------------------------------------------------------------------------------------

ROLE = process_role()
HOST = socket.gethostname()


def add_process(_logger, _method, event_dict: dict) -> dict:
    event_dict.setdefault("process", ROLE)
    event_dict["pid"] = os.getpid()
    event_dict["host"] = HOST
    return event_dict


def gunicorn_access(_logger, _method, event_dict: dict) -> dict:
    """gunicorn's access line as fields (its atoms), with the trace id our middleware answered with; the
    arguments of other lines are in their message already."""
    atoms = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is None or record.name != "gunicorn.access" or not isinstance(atoms, dict):
        return event_dict
    event_dict.update(
        event="request", method=atoms.get("m"), path=atoms.get("U"), status=_int(atoms.get("s")),
        duration_ms=round((_int(atoms.get("D")) or 0) / 1000, 3), remote_addr=atoms.get("h"),
        bytes=_int(atoms.get("B")),
    )
    trace_id = atoms.get("{x-b3-traceid}o")
    if trace_id and trace_id != "-":
        event_dict["trace_id"] = trace_id
    return event_dict


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    add_process,
    gunicorn_access,
]


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=PRE_CHAIN,
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(default=str),
        ],
    )


def traffic_logged() -> bool:
    return os.environ.get("LOG_TRAFFIC", "").strip().lower() in {"1", "true", "yes", "on"}


def logging_config(*, level: str = "INFO") -> dict:
    """The `LOGGING` of the settings (and of gunicorn.conf.py with LOG_FORMAT=json)."""
    # One line per message received, queued and attempted (channels_app/traces.py): LOG_TRAFFIC=true.
    traffic = {"channels_app.traffic": {"level": "INFO" if traffic_logged() else "WARNING"}}
    if log_format() != JSON:
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "root": {"handlers": ["console"], "level": level},
            "loggers": traffic,
        }
    logging.captureWarnings(True)  # a library's warning is a line of the log too, not text on standard error
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": json_formatter}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["console"], "level": level},
        # gunicorn's and Celery's loggers have handlers of their own otherwise: their lines go through ours.
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": logger_level}
            for name, logger_level in [("gunicorn.error", level), ("gunicorn.access", "INFO"), ("celery", level)]
        } | traffic,
    }

