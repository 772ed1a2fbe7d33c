"""Benchmarks and reliability suites, run from the repository root as modules: `.venv/bin/python -m bench.<name>`.

Shared by them: `bench.processes` (the stack: PostgreSQL databases, brokers, gunicorn, Celery workers),
`bench.measure` (CPU per process, percentiles, `name=value` figures), `bench.clients` (load senders and the
REST API client); the third party that receives webhooks is `tests.third_party`, the suite's own.
"""
