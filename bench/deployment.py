"""Deployment suite: production settings, request limits, secrets, rate limiting.

Runs tests/test_deployment.py (its docstring says what each check does) with
pytest, against PostgreSQL (test database `test_dms_deployment`, created and
dropped by pytest-django) and Redis db 4 as the Celery broker: `manage.py
check --deploy` with DEBUG=false, then a real gunicorn with DEBUG=false and a
real Celery worker on that database. Prints the figures the tests recorded:

    check_deploy_issues   warnings and errors of `check --deploy --fail-level WARNING`
    oversized_requests    oversized bodies, headers and request lines sent (API, ESP, nexus, token, admin)
    oversized_5xx         of those, answered with a 5xx (413/400/414/431 expected)
    secrets_checked       secrets looked for (channel secret, token, passwords, SECRET_KEY, signatures)
    secrets_in_logs       of those, found in gunicorn's or the worker's log (at DEBUG level)
    secrets_shown         of those, found in the API's or the admin's channel pages
    token_rate_limited    1 when the token endpoint answered 429 within its limit, spoofed addresses or not
    tests_failed          tests of the file that failed
    deployment_problems   the headline: the sum of what should be 0 (and 1 - token_rate_limited)

Exits 1 when deployment_problems is not 0. Run from the repository root:

    .venv/bin/python -m bench.deployment
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from bench.measure import print_figures
from bench.processes import BIN, ROOT, print_postgres_settings

DATABASE, REDIS_DB = "dms_deployment", 4


def main() -> int:
    print_postgres_settings()
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    client.flushdb()
    with tempfile.TemporaryDirectory(prefix="dms-deployment-") as folder:
        figures_path = Path(folder) / "figures.json"
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "DEPLOYMENT_FIGURES": str(figures_path),
        }
        result = subprocess.run(
            [str(BIN / "pytest"), "tests/test_deployment.py", "-p", "no:cacheprovider", "-q", "--create-db"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    client.flushdb()
    client.close()
    summary = re.search(r"(\d+) failed", result.stdout)
    failed = int(summary[1]) if summary else (0 if result.returncode == 0 else 1)
    if result.returncode != 0:
        print(result.stdout[-6000:] + result.stderr[-2000:], file=sys.stderr)
    names = ["check_deploy_issues", "oversized_requests", "oversized_5xx", "secrets_checked", "secrets_in_logs",
             "secrets_shown", "token_rate_limited"]
    values = {name: figures.get(name, -1) for name in names}  # -1: the test that measures it did not get there
    problems = (max(values["check_deploy_issues"], 0) + max(values["oversized_5xx"], 0)
                + max(values["secrets_in_logs"], 0) + max(values["secrets_shown"], 0)
                + (1 - max(values["token_rate_limited"], 0)) + failed)
    print_figures([*values.items(), ("tests_failed", failed), ("deployment_problems", problems)])
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
