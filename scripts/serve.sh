#!/usr/bin/env bash
# The supervisor of `make run`: the web server (gunicorn with uvicorn's workers: the API, the admin and
# the agents' event stream on one port), the dispatcher that sends single messages, a Celery worker per
# lane (people, bulk, media) and one Celery beat, each a process of its own, and when any one of them ends (Ctrl-C, a crash, kill -9)
# all of them stop.
#
# Each runs in its own process group (set -m) and is stopped as a group: a
# worker's pool processes and gunicorn's workers stop with their parent even
# when it was killed with SIGKILL and could not stop them itself. The beat is
# not started by the worker (`--beat`) any more: a worker killed with SIGKILL
# left its beat running, and after a restart two beats scheduled everything
# twice.
#
# When this script itself is killed with SIGKILL (no trap runs), a guard stops
# them: a small process of its own group that serve.sh tells the pid of every
# process it starts, through a pipe only serve.sh writes to. The end of that
# pipe without a goodbye means serve.sh is gone: the guard stops every process
# as serve.sh would have, and nothing outlives it.
#
# To add a process: `start <command>` below, before the banner.
set -uo pipefail
cd "$(dirname "$0")/.."
umask 077  # what the processes create (var/: the database, the broker, the cache, media) is their owner's only
set -m
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
STOP_SECONDS="${STOP_SECONDS:-10}"  # how long the processes have to stop before SIGKILL
# /metrics adds up the counts of every process of this host here (prometheus-client's multiprocess mode);
# the files of an earlier run would be counted again.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${VAR_DIR:-var}/prometheus}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# TERM each process (the leader of its group), then SIGKILL whatever is left of the groups after STOP_SECONDS.
# For the guard, whose pids are not its children: it polls instead of waiting.
alive() {
  local pid
  for pid in "$@"; do kill -0 -- "-$pid" 2>/dev/null && return 0; done
  return 1
}
stop_groups() {
  local pid waited=0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
  while [ "$waited" -lt $((STOP_SECONDS * 10)) ] && alive "$@"; do
    sleep 0.1
    waited=$((waited + 1))
  done
  for pid in "$@"; do kill -KILL -- "-$pid" 2>/dev/null; done
}

guard() {
  trap '' INT TERM HUP  # Ctrl-C and a stop reach serve.sh, which says goodbye
  local line started=()
  while read -r line; do
    [ "$line" = "goodbye" ] && return 0
    started+=("$line")
  done
  echo "serve.sh is gone: stopping its processes" >&2
  stop_groups "${started[@]}"
}
coproc GUARD { guard; }

tell_guard() {  # the guard may be gone (killed): then a failed write, not a SIGPIPE for serve.sh
  trap '' PIPE
  echo "$1" >&"${GUARD[1]}" 2>/dev/null
  trap - PIPE
}

# LOG_FORMAT=json: standard output carries JSON lines only (project/logs.py), so Celery prints no banner.
CELERY_QUIET=()
[ "${LOG_FORMAT:-text}" = "json" ] && CELERY_QUIET=(--quiet)
# Workers are named <lane>@<NODE_NAME>: the host name unless set (two nodes on one machine need two names).
NODE_NAME="${NODE_NAME:-%h}"

pids=()
start() {  # `start <command...>`: run it in a process group of its own, supervised
  "$@" &
  pids+=($!)
  tell_guard "$!"
}

stop() {
  trap - INT TERM EXIT
  tell_guard goodbye
  # Each leader stops its own children (a worker its pool, gunicorn its workers) the way it knows best;
  # whatever has not stopped after STOP_SECONDS is killed.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  ( sleep "$STOP_SECONDS"; for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done ) &
  local watchdog=$!
  wait "${pids[@]}" 2>/dev/null
  kill -- "-$watchdog" 2>/dev/null
  # The leaders are gone; anything left in their groups (a pool process of a killed worker) goes too.
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# DEMO_GRAPH_STAND_IN=1: Meta's Graph API stand-in (tests/graph_stand_in.py) on 127.0.0.1, for the demo's
# WhatsApp Cloud API channel (seed_demo --graph-stand-in); it sends its signed status webhooks back here.
if [ "${DEMO_GRAPH_STAND_IN:-0}" = "1" ]; then
  STAND_IN_PORT="${STAND_IN_PORT:-8765}"
  export GRAPH_API_BASE="http://127.0.0.1:${STAND_IN_PORT}/v21.0"
  export WEBHOOK_ALLOWED_NETWORKS="${WEBHOOK_ALLOWED_NETWORKS:+$WEBHOOK_ALLOWED_NETWORKS,}127.0.0.1/32"
  start env STAND_IN_PORT="$STAND_IN_PORT" STAND_IN_APP_SECRET="demo-app-secret" \
    STAND_IN_WEBHOOK_URL="http://127.0.0.1:${PORT}/whatsapp/channel-wa-cloud-demo/webhook" \
    .venv/bin/python -m tests.graph_stand_in
fi
# A worker per lane (project/settings.py): a campaign's batches never delay an agent's reply, and a slow file
# server (customers' attachments, WhatsApp media) never delays a WhatsApp customer's message.
start .venv/bin/celery -A project "${CELERY_QUIET[@]}" worker --loglevel "${CELERY_LOG_LEVEL:-INFO}" \
  --concurrency "${CELERY_CONCURRENCY:-2}" -Q people,celery -n "people@${NODE_NAME}"
start .venv/bin/celery -A project "${CELERY_QUIET[@]}" worker --loglevel "${CELERY_LOG_LEVEL:-INFO}" \
  --concurrency "${CELERY_BULK_CONCURRENCY:-1}" -Q bulk -n "bulk@${NODE_NAME}"
start .venv/bin/celery -A project "${CELERY_QUIET[@]}" worker --loglevel "${CELERY_LOG_LEVEL:-INFO}" \
  --concurrency "${CELERY_MEDIA_CONCURRENCY:-2}" -Q media -n "media@${NODE_NAME}"
# Every node may start its beat: only the one holding the beat lock schedules (channels_app/beat_lock.py).
start .venv/bin/celery -A project "${CELERY_QUIET[@]}" beat --loglevel "${CELERY_LOG_LEVEL:-INFO}"
# Agent replies, invitations and retries: claimed from the database as they come due and sent in batches
# (channels_app/dispatcher.py); woken by PostgreSQL's NOTIFY, polling on SQLite.
start .venv/bin/python manage.py dispatch
# The web server: every request on PORT (project/asgi.py). gunicorn's master holds the port and supervises
# WEB_CONCURRENCY processes (project/server.py: uvicorn's event loop in each); the agents' event stream
# (GET /api/agents/me/events/) is served on the loop, where an open stream costs memory, not a thread, and every
# other request by Django's WSGI application in a pool of WEB_THREADS threads per process.
export WEB_THREADS="${WEB_THREADS:-4}"
start .venv/bin/gunicorn project.asgi:application --worker-class project.server.Worker --bind "${HOST}:${PORT}" \
  --workers "${WEB_CONCURRENCY:-2}" --timeout 30 --access-logfile -
echo "Digital Messaging Server: http://${HOST}:${PORT}/admin/  (API docs: /api/docs/, health: /healthz," \
  "agents' events: /api/agents/me/events/)" >&2
# Stay in the foreground; when any process ends, stop the others (the EXIT trap).
wait -n "${pids[@]}"
