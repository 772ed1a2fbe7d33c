"""Inbound attachments: how many are stored per second, and the worker's memory while it fetches big files.

    .venv/bin/python bench/media.py [--small 200] [--big 20] [--big-mb 50] [--concurrency 2]

A fresh PostgreSQL database and a Redis broker of its own (bench/stack.py; a shared Redis db may be
flushed by another benchmark), gunicorn and one Celery worker (`--concurrency` prefork children), files
stored on the local filesystem (MEDIA_ROOT in the benchmark's temporary folder). A file server on
127.0.0.1 (tests/file_server.py) serves the files; big ones are streamed from a constant chunk, never held.

1. `--small` PNG images (a few kB each, with a thumbnail made for each) arrive as attachments of signed
   /nexus Text messages, 10 a message; the clock runs from the first request to the last attachment
   stored.
2. `--big` PDF files of `--big-mb` MB each, 10 a message likewise; the resident memory (RSS) of the
   worker's processes is sampled every 50 ms while they are fetched and stored.

Output: `name=value` lines: counts, failures (must be 0), the big files' total and time, the worker's
peak RSS (the largest sum over its processes, and the largest single process), and the headline
`attachments_stored_per_second` last. Exits 1 when an attachment failed.
"""

import argparse
import hashlib
import hmac
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

from bench.measure import print_figures
from bench.processes import Stack
from tests.file_server import Served, start_file_server

SECRET = "bench-media-secret"
CHANNEL = "bench-media"
SETUP = f"""
from channels_app.models import Channel, Tenant
from channels_app.services.channels import channel_save
channel_save(channel=Channel(channel_id="{CHANNEL}", name="Media", tenant=Tenant.objects.order_by("pk").first(),
             media_type="sms", transport="webhook", business_id="0123456789", webhook_url="http://127.0.0.1:9/x",
             secret="{SECRET}"), inbound_route_by_call="1:session-chat")
print("OK=1")
"""


def png(seed: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (640, 480), (seed % 255, 80, 160)).save(out, "PNG")
    return out.getvalue()


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def post_messages(stack: Stack, urls: list[tuple[str, str]], prefix: str) -> None:
    for start in range(0, len(urls), 10):
        batch = urls[start:start + 10]
        body = json.dumps({"messages": [{
            "type": "Text", "text": "",
            "attachments": [{"url": url, "fileName": name} for url, name in batch],
            "channel": {"messageId": f"{prefix}-{start}", "from": {"id": "15556667777"}},
        }]}).encode()
        signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
        status, answer = stack.request("POST", f"/nexus/v3/channels/{CHANNEL}/messages", body,
                                       {"Content-Type": "application/json", "X-Hub-Signature": signature})
        if status != 200:
            raise RuntimeError(f"/nexus answered {status}: {answer[:300]!r}")


def wait_stored(stack: Stack, conn, total: int, timeout: float) -> tuple[int, int]:
    """Poll (one connection, opened before the servers start: a busy PostgreSQL may have none left later)."""
    deadline = time.monotonic() + timeout
    counts = {}
    while time.monotonic() < deadline:
        counts = dict(conn.execute(
            "SELECT status, count(*) FROM channels_app_messageattachment GROUP BY status").fetchall())
        stored, failed = counts.get("stored", 0), counts.get("failed", 0)
        if stored + failed >= total:
            return stored, failed
        stack.check_alive()
        time.sleep(0.05)
    raise RuntimeError(f"timed out: {counts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--big", type=int, default=20)
    parser.add_argument("--big-mb", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    files = start_file_server()
    try:
        with Stack("dms_bench_media", broker="redis") as stack:
            stack.env["MEDIA_ROOT"] = str(stack.logs / "media")
            stack.prepare()
            stack.shell(SETUP)
            import psycopg

            conn = psycopg.connect(stack.dsn, autocommit=True)
            stack.start_gunicorn(workers=1, threads=4)
            stack.start_celery(count=1, concurrency=args.concurrency)
            worker_pids = lambda: stack.tree("celery1")  # noqa: E731

            small = []
            for number in range(args.small):
                files.files[f"/small-{number}.png"] = Served(png(number), headers={"Content-Type": "image/png"})
                small.append((files.url(f"/small-{number}.png"), f"photo-{number}.png"))
            started = time.monotonic()
            post_messages(stack, small, "small")
            stored, failed = wait_stored(stack, conn, args.small, timeout=600)
            small_seconds = time.monotonic() - started

            big_bytes = args.big_mb * 1024 * 1024
            big = []
            for number in range(args.big):
                files.files[f"/big-{number}.pdf"] = Served(big_bytes, prefix=b"%PDF-1.4\n")
                big.append((files.url(f"/big-{number}.pdf"), f"big-{number}.pdf"))
            peak = {"sum": 0, "one": 0}
            sampling = threading.Event()

            def sample():
                while not sampling.is_set():
                    values = [rss_kb(pid) for pid in worker_pids()]
                    peak["sum"] = max(peak["sum"], sum(values))
                    peak["one"] = max(peak["one"], max(values, default=0))
                    time.sleep(0.05)

            baseline = sum(rss_kb(pid) for pid in worker_pids())
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            post_messages(stack, big, "big")
            big_stored, big_failed = wait_stored(stack, conn, args.small + args.big, timeout=1800)
            big_seconds = time.monotonic() - started
            sampling.set()
            sampler.join()
            on_disk = sum(f.stat().st_size for f in (stack.logs / "media").rglob("big-*.pdf"))
            failures = failed + big_failed
            if failures:
                stack.keep_logs = True
                print(conn.execute("SELECT file_name, reason FROM channels_app_messageattachment "
                                   "WHERE status = 'failed' LIMIT 5").fetchall(), file=sys.stderr)
            conn.close()
            print_figures([
                ("small_attachments", args.small),
                ("small_seconds", small_seconds),
                ("big_attachments", args.big),
                ("big_file_mb", args.big_mb),
                ("big_stored_mb", on_disk / 1024 / 1024),
                ("big_seconds", big_seconds),
                ("big_mb_per_second", on_disk / 1024 / 1024 / big_seconds),
                ("failed", failures),
                ("worker_processes", len(worker_pids())),
                ("worker_rss_before_big_mb", baseline / 1024),
                ("worker_peak_rss_mb", peak["sum"] / 1024),
                ("worker_peak_rss_one_process_mb", peak["one"] / 1024),
                ("attachments_stored_per_second", stored / small_seconds),
            ])
            return 1 if failures or big_stored - stored < args.big else 0
    finally:
        files.stop()


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    sys.exit(main())
