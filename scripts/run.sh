#!/usr/bin/env bash
# `make run`: migrate, load the demo data, then serve (scripts/serve.sh: the
# web server, the dispatcher, a Celery worker per lane and one beat,
# supervised together) until interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077  # var/ and everything in it (the SQLite database, the broker, media) for this user only
PY=.venv/bin/python

$PY manage.py migrate --noinput
if [ "${DEMO_GRAPH_STAND_IN:-0}" = "1" ]; then
  $PY manage.py seed_demo --graph-stand-in  # a WhatsApp Cloud API channel on the stand-in (scripts/serve.sh)
else
  $PY manage.py seed_demo
fi
$PY manage.py ensure_admin
$PY manage.py collectstatic --noinput -v 0

exec scripts/serve.sh
