"""The text rules: what text the server takes in (API.md, "Safe by default").

Refused everywhere text enters (the API's parsers, ESP, /nexus, admin forms,
CSV audiences), before anything is stored:

* a NUL character (U+0000): PostgreSQL can neither store nor compare text
  holding one, so a save or a lookup with it was a 500;
* a lone UTF-16 surrogate (U+D800..U+DFFF not in a pair): `json.loads` makes
  one from an escape such as "\\ud800", and it cannot be encoded as UTF-8, so
  writing it to the database, a log or a webhook body was a 500.

A valid pair of escapes ("\\ud83d\\ude00") decodes to one character and is
taken. The callers turn a broken rule into their own error: 400 naming the
field (API, admin), 904 (ESP), 400 with status 520 (/nexus), a refused row
(CSV audiences).
"""

import re

# One search over the text, in C: NUL, or any surrogate code point (a str holds only lone ones).
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def _described(character: str) -> str:
    if character == "\x00":
        return "a NUL character (\\u0000)"
    return f"a lone surrogate (\\u{ord(character):04x})"


def text_rule_broken(text: str) -> str | None:
    """What in `text` breaks the text rules ("a NUL character (\\u0000)", "a lone surrogate (\\ud800)"),
    or None when it keeps them."""
    found = _REFUSED.search(text)
    return _described(found.group()) if found else None


def text_rule_broken_line(text: str) -> tuple[int, str] | None:
    """(line number, what) of the first place a file's text breaks the text rules; None when nowhere."""
    found = _REFUSED.search(text)
    return (text.count("\n", 0, found.start()) + 1, _described(found.group())) if found else None


def text_rule_broken_at(value, path: str = "") -> tuple[str, str] | None:
    """Where a parsed JSON value (keys included) breaks the text rules, and how: e.g.
    ("recipients[0].Contact.FirstName", "a lone surrogate (\\ud800)"); None when nowhere."""
    if isinstance(value, str):
        broken = text_rule_broken(value)
        return (path or "(the body)", broken) if broken else None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = escaped(key) if isinstance(key, str) else str(key)
            inner = f"{path}.{shown}" if path else shown
            if isinstance(key, str) and (broken := text_rule_broken(key)):
                return inner, broken
            if found := text_rule_broken_at(item, inner):
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if found := text_rule_broken_at(item, f"{path}[{index}]"):
                return found
    return None


def escaped(text: str) -> str:
    """`text` with what the rules refuse written as escapes, so that an error message can name it (a lone
    surrogate in an answer could not be encoded: a 500 again)."""
    return _REFUSED.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def text_rule_message(where: str, broken: str) -> str:
    return f"{where} holds {broken}, which is not accepted."


def utf8_bytes_over(text: str, limit: int) -> int | None:
    """The UTF-8 size of `text` when it is over `limit` bytes, else None (without encoding short texts)."""
    if len(text) * 4 <= limit:  # four bytes a character at most
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")


def one_line(text: str) -> str:
    """`text` on one line: every line break (CR, LF and the others `str.splitlines` knows) with the spaces
    around it becomes one space, so a subject can never add a header line to an e-mail."""
    return _LINE_BREAKS.sub(" ", text).strip()
