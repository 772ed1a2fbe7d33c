#!/usr/bin/env bash
# `make run`: migrate, load the demo data, then run the web server and a Celery
# worker (with the beat scheduler) side by side until interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"

$PY manage.py migrate --noinput
$PY manage.py seed_demo
$PY manage.py ensure_admin
$PY manage.py collectstatic --noinput -v 0

pids=()
stop() {
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/celery -A project worker --beat --loglevel "${CELERY_LOG_LEVEL:-INFO}" \
  --concurrency "${CELERY_CONCURRENCY:-2}" --schedule var/celerybeat-schedule &
pids+=($!)
.venv/bin/gunicorn project.wsgi:application --bind "0.0.0.0:${PORT}" \
  --workers "${WEB_CONCURRENCY:-2}" --threads 4 --timeout 30 --access-logfile - &
pids+=($!)
echo "Digital Messaging Server: http://127.0.0.1:${PORT}/admin/  (API docs: /api/docs/, health: /healthz)"
# Stay in the foreground; when either process ends, stop the other.
wait -n "${pids[@]}"
