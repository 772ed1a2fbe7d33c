"""Benchmark: a campaign's audience as one CSV file through the API, up to a million rows.

    .venv/bin/python -m bench.audience [N] [--redis-db 10]

N rows (default 1,000,000). A fresh PostgreSQL database and the given Redis
db (bench/processes.py), gunicorn (2 workers x 4 threads, its timeout 60 s)
and one Celery worker (one child, every lane). Through the REST API with a
token: a WhatsApp webhook channel and a notification response with two field
codes (Contact.FirstName, CustomProperties.Code), then the campaign created
with `POST /api/campaigns/` as multipart with the whole audience as its
`file` (client_id, Contact.FirstName, CustomProperties.Code; phone numbers
1555xxxxxxx, ~40 bytes a row). A file of more than AUDIENCE_INLINE_ROWS lines
is answered at once and read by the worker in chunks: `GET
/api/campaigns/{id}/` is polled every 0.5 s until its `audience_upload` is
`done` (or the deadline: 60 s + N x 1 ms).

Every 0.5 s, the resident memory (VmRSS) of each gunicorn and Celery process.
Output: `name=value` lines: the request's seconds, the seconds until the
audience is stored, rows stored per second, the peak memory of the web
workers and of the worker's children, and the rows accepted (must be N).
"""

import argparse
import io
import json
import threading
import time
import uuid

from bench.clients import Api
from bench.processes import Stack

DATABASE = "dms_bench_audience"
CHANNEL_ID = "bench-wa-audience"
RESPONSE_ID = "BenchAudience001"


def vm_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Peaks:
    """The peak VmRSS of every process of the named trees, sampled every 0.5 s."""

    def __init__(self, stack: Stack, names: list[str]):
        self.stack, self.names, self.peaks = stack, names, {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            for name in self.names:
                for pid in self.stack.tree(name):
                    key = (name, pid)
                    self.peaks[key] = max(self.peaks.get(key, 0), vm_rss_kib(pid))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)

    def largest_mib(self, name: str) -> float:
        return max((kib for (group, _), kib in self.peaks.items() if group == name), default=0) / 1024


def audience_csv(rows: int) -> bytes:
    out = io.StringIO()
    out.write("client_id,Contact.FirstName,CustomProperties.Code\n")
    for n in range(rows):
        out.write(f"1555{1_000_000 + n:07d},Customer{n},C{n:07d}\n")
    return out.getvalue().encode()


def multipart(fields: dict, file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
                 "Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--redis-db", type=int, default=10)
    args = parser.parse_args()
    with Stack(DATABASE, redis_db=args.redis_db) as stack:
        stack.env["DEBUG"] = "false"
        stack.prepare()
        stack.start_gunicorn(workers=2, threads=4)
        stack.start_celery(count=1, concurrency=1)
        api = Api(stack)
        api.call("POST", "/api/channels/", {
            "channel_id": CHANNEL_ID, "name": "Bench audience", "tenant": 1, "media_type": "whatsapp",
            "transport": "webhook", "business_id": "19255550100", "webhook_url": "http://127.0.0.1:9/",
            "secret": "bench-audience-secret", "endpoints": ["1:session-chat"],
            "inbound_route_by_call": "1:session-chat",
        }, expect=(201,))
        api.call("POST", "/api/standard-responses/", {
            "id": RESPONSE_ID, "name": "Bench audience notice", "content_type": "notification", "language": "en",
            "body": "Hello {{1}}, your code is {{2}}.",
            "structured": {"template": {"name": "bench_notice", "id": "bench_notice_1", "language": "en"},
                           "parameters": {"1": "<$Contact.FirstName$>", "2": "<$CustomProperties.Code$>"}},
        }, expect=(201,))
        body, content_type = multipart({"name": f"Audience {args.rows}", "channel": CHANNEL_ID,
                                        "standard_response": RESPONSE_ID}, "audience.csv", audience_csv(args.rows))
        headers = {"Authorization": f"Token {stack.token}", "Content-Type": content_type}
        with Peaks(stack, ["gunicorn", "celery1"]) as peaks:
            started = time.monotonic()
            status, answer = stack.request("POST", "/api/campaigns/", body, headers)
            request_seconds = time.monotonic() - started
            if status != 201:
                raise RuntimeError(f"POST /api/campaigns/: {status} {answer[:1000]!r}")
            campaign = json.loads(answer)
            deadline = started + 60 + args.rows / 1000
            upload = campaign["audience_upload"]
            while upload["state"] == "loading" and time.monotonic() < deadline:
                time.sleep(0.5)
                stack.check_alive()
                upload = api.call("GET", f"/api/campaigns/{campaign['id']}/")["audience_upload"]
            stored_seconds = time.monotonic() - started
        print(f"rows={args.rows}")
        print(f"file_bytes={len(body)}")
        print(f"request_seconds={request_seconds:.2f}")
        print(f"upload_state={upload['state']}")
        print(f"rows_accepted={upload['accepted']}")
        print(f"rows_refused={upload['rejected']}")
        print(f"web_worker_peak_rss_mib={peaks.largest_mib('gunicorn'):.1f}")
        print(f"celery_peak_rss_mib={peaks.largest_mib('celery1'):.1f}")
        print(f"stored_seconds={stored_seconds:.1f}")
        print(f"rows_per_second={args.rows / stored_seconds:.0f}")
        if upload["state"] != "done" or upload["accepted"] != args.rows:
            stack.keep_logs = True
            raise SystemExit(1)


if __name__ == "__main__":
    main()
