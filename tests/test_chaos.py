"""The chaos suite (bench/chaos.py) at CI size: a campaign of 200 recipients
on the whole stack (its own database, gunicorn, two Celery workers with beat,
a redis-server of its own) through a worker SIGKILL, a broker restart and a
gunicorn worker killed while a request is in flight: nothing is lost, no
customer gets a message twice, every recipient ends sent or failed with a
reason, and the broken request is stored all or nothing, then once."""

import os
import shutil
from urllib.parse import urlsplit

from bench import chaos
from tests.conftest import require_or_skip

# Shorter still than the suite's: the campaign lasts ~15-30 s here.
FAST_RECOVERY = {"DELIVERY_LEASE_SECONDS": "5", "DELIVERY_RELAY_GRACE_SECONDS": "2",
                 "CAMPAIGN_CLAIM_LEASE_SECONDS": "12", "CAMPAIGN_STALLED_SECONDS": "2"}


def test_a_campaign_through_a_worker_kill_a_broker_restart_and_a_web_kill_loses_and_repeats_nothing():
    database_url = os.environ.get("DATABASE_URL", "")
    require_or_skip(database_url.startswith("postgres"), "the chaos suite runs on PostgreSQL: set DATABASE_URL")
    require_or_skip(shutil.which("redis-server") is not None, "the chaos suite starts a redis-server of its own")
    # Inbound requests of 100 messages: long enough (~100 ms) for the web kill to find one in flight.
    scenario = chaos.Scenario(
        recipients=200, broker="redis", seed=11, worker_kills=1, rate=15, recovery=FAST_RECOVERY,
        database=urlsplit(database_url).path.strip("/") + "_chaos_ci", inbound_batch=100, deadline=120,
    )

    figures, problems = chaos.run(scenario)

    values = dict(figures)
    assert problems == [], figures
    assert (values["worker_kills"], values["broker_restarts"], values["web_kills_hitting_a_request"]) == (1, 1, 1)
    assert values["lost"] == 0
    assert values["duplicate_side_effects"] == 0
    assert values["raw_duplicate_posts"] <= min(values["attempts_cut_short"], values["duplicate_bound"])
    assert values["final_done_pct"] == 100.0
    assert values["inbound_messages_stored"] == values["inbound_messages_expected"]
