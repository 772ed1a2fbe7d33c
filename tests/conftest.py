import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.choices import MediaType, Transport
from tests.factories import ChannelFactory, TenantFactory

# The networks the suite's receivers listen on, allowed as webhook targets (WEBHOOK_ALLOWED_NETWORKS).
LOCAL_RECEIVERS = ["127.0.0.0/8"]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_configure(config):
    # In CI the suite must run against the real services, never silently on the embedded defaults.
    if IN_CI:
        missing = [name for name in ("DATABASE_URL", "CELERY_BROKER_URL") if not os.environ.get(name)]
        if missing:
            raise pytest.UsageError(f"CI is set but {', '.join(missing)} is not: the suite needs the real services.")


# Redis's default number of databases (`databases` in redis.conf).
REDIS_DATABASES = 16


def worker_broker_url(url: str, index: int, count: int) -> str:
    """The broker of xdist worker `index` of `count`: another Redis database of the same server, spread over the
    16 so that the workers never share one (a worker process of one xdist worker would take the tasks of the
    other, which point at another test database). Worker 0 keeps the database named; other brokers are kept
    as they are (the filesystem broker lives in the worker's own VAR_DIR)."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or index == 0:
        return url
    if count > REDIS_DATABASES:
        raise pytest.UsageError(f"at most {REDIS_DATABASES} xdist workers: each needs a Redis database of its own")
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + index * (REDIS_DATABASES // count)) % REDIS_DATABASES}"))


def pytest_xdist_setupnodes(config, specs):
    """Give each xdist worker an installation of its own before Django reads its settings there: its own VAR_DIR
    (the file cache that `_clear_cache` empties before every test, the secret key its worker processes share,
    the filesystem broker) and its own broker. The test database is already its own (pytest-django adds
    `_gw<n>` to the name); ports are free ones picked by each test."""
    var_root = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var") / "xdist"
    for index, spec in enumerate(specs):
        var_dir = var_root / f"gw{index}"
        var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        spec.env["VAR_DIR"] = str(var_dir)
        if broker := os.environ.get("CELERY_BROKER_URL"):
            spec.env["CELERY_BROKER_URL"] = worker_broker_url(broker, index, len(specs))


# Modules whose tests start processes (workers, gunicorn, `make run`, a browser), wait out timeouts on purpose or
# fuzz: `make test-fast` leaves them out (`-m "not slow"`); `make test` and CI run everything.
SLOW_MODULES = {
    "test_browser", "test_chaos", "test_crash", "test_deployment", "test_first_run", "test_fuzz", "test_json_logs",
    "test_one_port", "test_outbox_crash", "test_receipts", "test_retry_schedule", "test_rolling_restart",
    "test_routing_browser", "test_run", "test_several_nodes", "test_worker",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    # The slow modules first, so that xdist's workers end together on short tests instead of one waiting out a long
    # test handed out last. A stable sort, before pytest-django's own (plain, then transactional tests), which keeps
    # this order within each of its kinds.
    items.sort(key=lambda item: item.module.__name__.rsplit(".", 1)[-1] not in SLOW_MODULES)


def require_or_skip(condition: bool, reason: str) -> None:
    """Skip locally when a tool is missing; fail in CI, where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this test cannot be skipped)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clear_cache():
    from channels_app.authentication import credentials
    from channels_app.selectors import channels_by_id, queues_by_key, standard_responses_for_sending

    cache.clear()  # throttling state lives in the cache
    credentials.clear()  # a rolled-back test sends no signal
    channels_by_id.clear()
    queues_by_key.clear()
    standard_responses_for_sending.clear()
    yield


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # Real password hashing costs ~0.4 s a user; these tests are not about passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The third parties of the suite (tests/third_party.py) listen on 127.0.0.1: allowed explicitly, as an operator
    # allows a receiver on the same machine. Worker processes get the same through their environment
    # (tests/workers.py).
    settings.WEBHOOK_ALLOWED_NETWORKS = LOCAL_RECEIVERS
    # The suite's administrators sign in with a password only; tests/test_sign_in.py (and its browser journey)
    # turn the second factor on, as production has it (REQUIRE_2FA_GROUPS=Administrator). The worker and
    # server processes of the suite get the same through their environment (tests/workers.py).
    settings.REQUIRE_2FA_GROUPS = []


@pytest.fixture
def tenant(db):
    return TenantFactory(id=1, name="Environment")


@pytest.fixture
def channel(tenant):
    return ChannelFactory(
        channel_id="channel-whatsapp-REAL",
        name="WhatsApp",
        tenant=tenant,
        media_type=MediaType.WHATSAPP,
        transport=Transport.WEBHOOK,
        business_id="19251112222",
        webhook_url="http://127.0.0.1:9/hook",
        endpoints=["1:session-chat"],
        inbound_route_by_call="1:session-chat",
    )


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def member(username: str, *groups: str, tenants=(), password: str | None = None, is_staff: bool = True):
    """A user in the default groups named, member of `tenants` (API.md, "Who may do what")."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from channels_app.models import Membership
    from channels_app.services.roles import roles_ensure_default_groups

    if not Group.objects.filter(name__in=groups).count() == len(set(groups)):
        roles_ensure_default_groups()  # a flushed database (transactional tests) has lost them
    user = get_user_model().objects.create_user(username, password=password or f"{username}-pass-123",
                                                is_staff=is_staff)
    user.groups.set(Group.objects.filter(name__in=groups))
    Membership.objects.bulk_create([Membership(user=user, tenant=tenant) for tenant in tenants])
    return user


@pytest.fixture
def staff_user(tenant):
    """An operator of tenant 1 who does everything there: administrator, senior agent and ESP client
    (tests/test_authorization.py holds each group to its own rights)."""
    return member("operator", "Administrator", "WhatsApp senior agent", "ESP client", tenants=[tenant],
                  password="operator-pass-123")


@pytest.fixture
def staff_api(staff_user):
    return _client_for(staff_user)


@pytest.fixture
def agent_user(tenant):
    """A WhatsApp agent of tenant 1 whose token may also call ESP (as a strategy's would)."""
    return member("agent", "WhatsApp agent", "ESP client", tenants=[tenant], password="agent-pass-123",
                  is_staff=False)


@pytest.fixture
def agent_api(agent_user):
    return _client_for(agent_user)


@pytest.fixture
def anonymous_api():
    return APIClient()


@pytest.fixture
def receiver():
    from tests.third_party import Receiver

    running = Receiver(keep_requests=True)
    yield running
    running.stop()


@pytest.fixture
def webhook_channel(channel, receiver):
    channel.webhook_url = receiver.url
    channel.secret = "channel-secret"
    channel.retry_attempts = 3
    channel.retry_timeout_seconds = 70
    channel.save()
    return channel
