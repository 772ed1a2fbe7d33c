"""Benchmark: render a WhatsApp notification with six field codes, single-threaded.

The standard response and values are those of the InviteToChat example of
dms-invite-to-chat.txt. Each render is one `render_payload` call, the path every
sender takes (validation, field codes, limits re-checked on the result, payload).
The time spent by `render_template` alone on the same six field codes is printed
too. Run from the repository root:

    .venv/bin/python -m bench.render [seconds]

Output is `name=value` lines, the headline (`renders_per_second`) last.
"""

import argparse
import platform
import time
from collections.abc import Callable

from channels_app.rendering import normalize_field_values, render_payload, render_template

BODY = "Dear {{1}} {{2}}, your bill of {{3}} is due {{4}}. Our agent will call you {{5}} at {{6}}."
STRUCTURED = {
    "template": {"name": "bill_due", "id": "1234", "language": "en"},
    "parameters": {
        "1": "<$Contact.FirstName$>",
        "2": "<$Contact.LastName$>",
        "3": "<$Contact.MyFC_BillAmount$>",
        "4": "<$Contact.MyFC_Date$>",
        "5": "<$CustomProperties.CustomProp_Date$>",
        "6": "<$CustomProperties.CustomProp Time$>",
    },
}
TEXT = (
    "Dear <$Contact.FirstName$> <$Contact.LastName$>, your bill of <$Contact.MyFC_BillAmount$> is due "
    "<$Contact.MyFC_Date$>. Our agent will call you <$CustomProperties.CustomProp_Date$> at "
    "<$CustomProperties.CustomProp Time$>."
)
VALUES = normalize_field_values(
    contact={"FirstName": "John", "LastName": "Smith", "MyFC_BillAmount": "$129.99", "MyFC_Date": "March 5 / 2020"},
    custom_properties={
        "OtherProperty": [
            {"Name": "CustomProp_Date", "Value": "March 7 / 2020"},
            {"Name": "CustomProp Time", "Value": "3:00 PM"},
        ]
    },
)
EXPECTED = (
    "Dear John Smith, your bill of $129.99 is due March 5 / 2020. Our agent will call you March 7 / 2020 at 3:00 PM."
)
BATCH = 1000


def run(render: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Call `render` in batches until `seconds` have passed; return (renders, elapsed seconds)."""
    renders = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(BATCH):
            render()
        renders += BATCH
        now = time.perf_counter()
        if now >= deadline:
            return renders, now - started


def main() -> None:
    parser = argparse.ArgumentParser(description="Render a WhatsApp notification with six field codes, in-process "
                                                 "(no database: no PostgreSQL settings to print).")
    parser.add_argument("seconds", nargs="?", type=float, default=3.0, help="how long to render (default 3)")
    seconds = parser.parse_args().seconds
    rendered = render_payload("notification", BODY, STRUCTURED, VALUES)
    # A benchmark of a wrong result measures nothing.
    if rendered.payload["text"] != EXPECTED or rendered.missing or render_template(TEXT, VALUES).text != EXPECTED:
        raise SystemExit(f"unexpected rendering: {rendered}")

    template_renders, template_elapsed = run(lambda: render_template(TEXT, VALUES), seconds / 3)
    renders, elapsed = run(lambda: render_payload("notification", BODY, STRUCTURED, VALUES), seconds)

    print(f"python={platform.python_implementation()} {platform.python_version()}")
    print("field_codes=6")
    print(f"template_renders={template_renders}")
    print(f"template_seconds={template_elapsed:.3f}")
    print(f"template_renders_per_second={template_renders / template_elapsed:.0f}")
    print(f"microseconds_per_render={elapsed / renders * 1e6:.2f}")
    print(f"renders={renders}")
    print(f"seconds={elapsed:.3f}")
    print(f"renders_per_second={renders / elapsed:.0f}")


if __name__ == "__main__":
    main()
