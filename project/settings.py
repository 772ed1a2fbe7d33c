"""Settings, read from the environment with django-environ.

With no environment variables the embedded default runs: SQLite in WAL mode
and Celery's `filesystem://` broker, so `make run` needs no server at all.
See https://django-environ.readthedocs.io/ and docs/CONFIGURATION.md.
"""

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path

import environ
from kombu import Queue

from project.logs import log_format, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# What an installation keeps of its own: the embedded database, broker, cache, media and its SECRET_KEY; for
# its owner only (0700), as are the folders created in it.
VAR_DIR = env.path("VAR_DIR", default=BASE_DIR / "var")
VAR_DIR = Path(str(VAR_DIR))
VAR_DIR.mkdir(mode=0o700, exist_ok=True)

# --- Core ---------------------------------------------------------------------
# Safe as it is (API.md, "Operating the server"): DEBUG off unless asked for, a
# SECRET_KEY of this installation, only local host names, bound to 127.0.0.1.
DEBUG = env.bool("DEBUG", default=False)


def installation_secret_key(path: Path) -> str:
    """The SECRET_KEY generated for this installation on its first start and kept in `path` (mode 0600).
    Several processes start at once (web, worker, beat): the key is written to a temporary file and linked
    into place, so that each reads a whole key and all read the same one."""
    if not path.exists():
        from django.core.management.utils import get_random_secret_key

        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(get_random_secret_key())
        try:
            os.link(temporary, path)  # fails if another process was first: its key is kept
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY", default="") or installation_secret_key(VAR_DIR / "secret_key")
# HOST is where `make run` listens; a name given there is also accepted in requests.
HOST = env("HOST", default="127.0.0.1")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=["127.0.0.1", "localhost", "[::1]"] + ([HOST] if HOST not in ("127.0.0.1", "0.0.0.0", "::") else []),
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
LOGIN_URL = "admin:login"  # where a browser asking for a media file logs in

INSTALLED_APPS = [
    "channels_app.apps.DmsAdminConfig",  # django.contrib.admin with the project's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    # Two-factor authentication (README "Sign-in"): TOTP authenticators and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "channels_app",
]

MIDDLEWARE = [
    # The request's X-B3-TraceId (made when absent), bound for its log lines and answered (channels_app/traces.py).
    "channels_app.traces.TraceMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "channels_app.request_limits.RequestLimitsMiddleware",
    # POST /nexus/... and POST /esp answered here, past the rest of this list and DRF (channels_app/lean.py).
    "channels_app.lean.LeanPathsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): signed in with a second factor (channels_app/sign_in).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Keeps the request for the audit log's who and from where (channels_app/audit.py).
    "channels_app.audit.AuditContextMiddleware",
    # Turns a login refused by django-axes (too many failures from one client) into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# The web process and the worker both write to the embedded SQLite file, so it
# runs in WAL mode with immediate transactions and a busy timeout.
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # SQLite creates the file with the process's umask (0644, readable by every user of the machine), and its
    # -wal and -shm files with the file's mode: the file is created here first, 0600.
    SQLITE_FILE = str(DATABASES["default"]["NAME"])
    if SQLITE_FILE and SQLITE_FILE != ":memory:" and not SQLITE_FILE.startswith("file:"):
        try:
            os.close(os.open(SQLITE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except (FileExistsError, FileNotFoundError):  # there already, or its folder is not (SQLite will say)
            pass
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a health check that needs no SELECT 1 on a quiet connection (project/postgresql).
        DATABASES["default"]["ENGINE"] = "project.postgresql"
# The hot paths' statements are prepared once per connection (channels_app/prepared.py: PostgreSQL parses and plans
# them once, not on every call). Off behind a pooler in transaction mode that does not carry prepared statements
# from one server connection to the next: PgBouncer before 1.22 (psycopg sends DEALLOCATE ALL after a rollback), or
# with `max_prepared_statements = 0`.
# https://www.psycopg.org/psycopg3/docs/advanced/prepare.html
PREPARED_STATEMENTS = env.bool("PREPARED_STATEMENTS", default=True)
# Group commit (channels_app/group_commit.py): the customer messages of one process's concurrent requests share
# one transaction, committed by a writer thread; each request is answered once its batch is committed. Off on
# SQLite whatever this says.
GROUP_COMMIT = env.bool("GROUP_COMMIT", default=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- The application's name -------------------------------------------------------
# The Digital Messaging Server application name (WhatsApp guide, "WhatsApp Hub Driver Attributes"): the
# `_umsInboundIxnSubmittedBy` attribute of every interaction this server creates.
APPLICATION_NAME = env("APPLICATION_NAME", default="DigitalMessagingServer")

# --- The public address -------------------------------------------------------
# The address third parties reach this server at, e.g. https://dms.example.com: the inbound URL the admin shows
# on a channel and the signed links to files (below, "Media") are built on it. PORT is where `make run` listens.
PORT = env.int("PORT", default=8000)
PUBLIC_BASE_URL = env(
    "PUBLIC_BASE_URL", default=f"http://{HOST if HOST not in ('0.0.0.0', '::') else '127.0.0.1'}:{PORT}"
).rstrip("/")

# --- Celery -------------------------------------------------------------------
# `filesystem://` is kombu's serverless transport: it works across the
# processes of one machine, which is what the embedded default needs.
# https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.filesystem.html
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_FOLDER = VAR_DIR / "broker"
    BROKER_FOLDER.mkdir(mode=0o700, exist_ok=True)
    (VAR_DIR / "broker-control").mkdir(mode=0o700, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_FOLDER),
        "data_folder_out": str(BROKER_FOLDER),
        "control_folder": str(VAR_DIR / "broker-control"),
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Lanes, so that a campaign or a slow file server never delays a person: `people` carries what someone waits
# for (an agent's reply, a strategy's invitation, a retry, a WhatsApp customer's message), `bulk` the campaign
# batches, `media` the downloads of customers' files (inbound attachments, WhatsApp media: a server that answers
# slowly holds only this lane, at most MEDIA_FETCH_TOTAL_SECONDS per attempt); `celery` the periodic tasks.
# `make run` starts a worker for each lane (scripts/serve.sh); a worker started without -Q consumes them all.
CELERY_TASK_QUEUES = (Queue("people"), Queue("bulk"), Queue("media"), Queue("celery"))
CELERY_TASK_ROUTES = {
    "channels_app.deliver": {"queue": "people"},
    "channels_app.deliver_batch": {"queue": "people"},
    "channels_app.simulator_emit": {"queue": "people"},
    "channels_app.fetch_attachment": {"queue": "media"},
    "channels_app.whatsapp_inbox_process": {"queue": "people"},
    "channels_app.whatsapp_media_fetch": {"queue": "media"},
    "channels_app.campaign_batch": {"queue": "bulk"},
    "channels_app.campaign_audience_load": {"queue": "bulk"},
    # The daily retention purge may run for long after a first retention is set: never in a person's lane.
    "channels_app.purge": {"queue": "bulk"},
    # The reports' fold (its first run reads every conversation): never in a person's lane either.
    "channels_app.reports_fold": {"queue": "bulk"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connection around every task
# unless told to reuse it; a new PostgreSQL connection per delivery cost ~10%
# of a worker's time (bench/esp.py).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

# --- Cache (shared by the web processes and the workers) -----------------------
# Throttling and the seven-day WhatsApp contacts check live here. The embedded
# default is a file cache under var/; in production use e.g. redis://.../1.
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-cache-url
CACHES = {"default": env.cache_url("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

# --- Auth and passwords ---------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


def duration(value: str) -> timedelta:
    """Seconds (`2592000`) or a number with a unit: `90s`, `45m`, `12h`, `30d`, `2w`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
    if not match:
        raise environ.ImproperlyConfigured(f"Not a duration: {value!r} (e.g. 2592000, 30d, 12h, 45m).")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: float(match[1])})


# API tokens older than this are refused (401); `POST /api/auth/token/` then issues a new one.
TOKEN_TTL = duration(env("TOKEN_TTL", default="30d"))
# How long a process keeps a token's user, permissions and tenants (channels_app/authentication.py): a
# change made in another process (a revoked token, a removed group) takes effect within this. 0: never kept.
AUTH_CACHE_SECONDS = env.float("AUTH_CACHE_SECONDS", default=5.0)
# How long a process keeps a channel read by its id for /nexus and ESP (channels_app/selectors.py): a change made
# in another process (a new secret, a channel disabled, a circuit opened by a worker) takes effect within this.
CHANNEL_CACHE_SECONDS = env.float("CHANNEL_CACHE_SECONDS", default=2.0)
STANDARD_RESPONSE_CACHE_SECONDS = env.float("STANDARD_RESPONSE_CACHE_SECONDS", default=2.0)

# The login throttle (django-axes, https://django-axes.readthedocs.io/en/latest/4_configuration.html):
# after LOGIN_FAILURE_LIMIT failed logins from one client address (the admin's login form and
# POST /api/auth/token/ alike), that address is refused for LOGIN_COOLOFF_MINUTES; a successful login
# clears its count. The address is the one DRF's throttling uses (NUM_PROXIES). Failures are kept in the
# database (AccessAttempt rows, one per client): the embedded file cache is not atomic enough for axes'
# cache handler (check axes.W001), a restart does not forget them, and only failed logins write.
AUTHENTICATION_BACKENDS = [
    "channels_app.login_throttle.LoginThrottleBackend",
    # ModelBackend, refusing the passwords of all but superusers when OIDC_ONLY is true.
    "channels_app.login_throttle.PasswordBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "channels_app.login_throttle.client_ip_for_axes"
AXES_LOCKOUT_CALLABLE = "channels_app.login_throttle.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # no row for every successful login: only failures are counted
AXES_ENABLE_ADMIN = False  # the attempts are operational state, not configuration
AXES_VERBOSE = False

# --- Sign-in: single sign-on and the second factor (README "Sign-in", API.md "Sign-in") --------------------
# OpenID Connect (authorization code flow with PKCE, channels_app/sign_in/oidc.py): on when the three are set.
OIDC_ISSUER = env("OIDC_ISSUER", default="").rstrip("/")
OIDC_CLIENT_ID = env("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", default="")
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", default="single sign-on")
OIDC_SCOPES = env("OIDC_SCOPES", default="openid email profile")
# The ID token's claim listing the user's groups at the provider, and what each of those groups gives here:
# JSON {"<provider group>": {"groups": ["<group name>", ...], "tenants": [<tenant id>, ...]}, ...}.
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", default="groups")
OIDC_GROUP_MAP = env.json("OIDC_GROUP_MAP", default={})
if not isinstance(OIDC_GROUP_MAP, dict) or not all(
    isinstance(given, dict) and set(given) <= {"groups", "tenants"}
    and all(isinstance(name, str) for name in given.get("groups", []))
    and all(isinstance(tenant, int) and not isinstance(tenant, bool) for tenant in given.get("tenants", []))
    for given in OIDC_GROUP_MAP.values()
):
    raise environ.ImproperlyConfigured(
        'OIDC_GROUP_MAP: JSON {"<provider group>": {"groups": ["<group name>"], "tenants": [<tenant id>]}}.'
    )
# true: passwords sign in superusers only (the break-glass accounts); everyone else through the provider.
OIDC_ONLY = env.bool("OIDC_ONLY", default=False)
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT", default=10.0)
# Members of these groups give a TOTP code or a recovery code at every sign-in; the first sign-in enrols an
# authenticator. Empty: no group is asked. Superusers are asked too when REQUIRE_2FA_SUPERUSERS is true (the
# contract names the groups only; the `make run` demo's admin is a superuser outside them).
REQUIRE_2FA_GROUPS = env.list("REQUIRE_2FA_GROUPS", default=["Administrator"])
REQUIRE_2FA_SUPERUSERS = env.bool("REQUIRE_2FA_SUPERUSERS", default=False)
OTP_TOTP_ISSUER = APPLICATION_NAME  # the name an authenticator app shows

# --- Internationalization --------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise, also under gunicorn) --------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every start before the first collectstatic
STORAGES = {
    # Customers' files and kept audience CSVs (their numbers) are read by the server alone (never served from the
    # proxy), wherever MEDIA_ROOT is: files 0600, folders 0700, as var/ itself. (Static files keep Django's modes.)
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"file_permissions_mode": 0o600, "directory_permissions_mode": 0o700}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
MEDIA_URL = "media/"

# --- Media: storage and signed links (README, "Media") ----------------------------
# Files (attachments of standard responses and agents, customers' inbound files, thumbnails) go through
# Django's storage API: MEDIA_ROOT by default, or any S3-compatible store with MEDIA_STORAGE=s3
# (django-storages, https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html).
# Links to a file are built on PUBLIC_BASE_URL, signed with SECRET_KEY and valid for MEDIA_URL_TTL
# (channels_app/signed_links.py); on S3 they are the store's own presigned URLs unless
# MEDIA_S3_PRESIGNED=false.
MEDIA_URL_TTL = duration(env("MEDIA_URL_TTL", default="7d"))
MEDIA_STORAGE = env("MEDIA_STORAGE", default="filesystem")
MEDIA_S3_PRESIGNED = env.bool("MEDIA_S3_PRESIGNED", default=True)
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "access_key": env("AWS_S3_ACCESS_KEY_ID", default=env("AWS_ACCESS_KEY_ID", default=None)),
            "secret_key": env("AWS_S3_SECRET_ACCESS_KEY", default=env("AWS_SECRET_ACCESS_KEY", default=None)),
            "location": env("AWS_LOCATION", default=""),
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE", default=None),
            "signature_version": "s3v4",
            "default_acl": None,  # private objects: only signed links reach them
            "querystring_auth": True,
            "querystring_expire": int(MEDIA_URL_TTL.total_seconds()),
            "file_overwrite": False,
        },
    }
elif MEDIA_STORAGE != "filesystem":
    raise environ.ImproperlyConfigured(f"MEDIA_STORAGE is 'filesystem' or 's3', not {MEDIA_STORAGE!r}.")
# Inbound attachments (/nexus): each fetch waits at most MEDIA_FETCH_TIMEOUT seconds for a read, and a
# failed one is tried MEDIA_FETCH_ATTEMPTS times in all, MEDIA_FETCH_RETRY_SECONDS apart, doubling.
MEDIA_FETCH_TIMEOUT = env.float("MEDIA_FETCH_TIMEOUT", default=30.0)
# The whole transfer of one attempt (connection, headers and body), inbound attachments and WhatsApp media alike:
# a server that sends a byte now and then, never waiting MEDIA_FETCH_TIMEOUT, is cut off after this.
MEDIA_FETCH_TOTAL_SECONDS = env.float("MEDIA_FETCH_TOTAL_SECONDS", default=120.0)
MEDIA_FETCH_ATTEMPTS = env.int("MEDIA_FETCH_ATTEMPTS", default=4)
MEDIA_FETCH_RETRY_SECONDS = env.float("MEDIA_FETCH_RETRY_SECONDS", default=10.0)

# --- REST framework and OpenAPI -------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token authentication, with tokens that end (TOKEN_TTL).
        "channels_app.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["channels_app.api.permissions.TableRights"],
    # JSON only: form encodings cannot carry the nested objects and lists the API takes (they were
    # silently dropped); the views that take a file upload add multipart themselves.
    "DEFAULT_PARSER_CLASSES": ["channels_app.api.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_FILTER_BACKENDS": ["channels_app.api.query_params.StrictFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "channels_app.api.query_params.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "channels_app.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "channels_app.api.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"token": env("TOKEN_THROTTLE_RATE", default="20/min")},
    # Throttling tells clients apart by address. With NUM_PROXIES unset DRF believes the whole
    # X-Forwarded-For header, so a client escaped the limit by sending a new one with each attempt.
    # 0: the connection's address; behind N proxies that append to X-Forwarded-For, N.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Digital Messaging Server API",
    "DESCRIPTION": "Configuration, ESP, Third-Party Messaging and operations API.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The event stream is a plain (async) Django view, served by the ASGI server: described by a hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums", "channels_app.api.schema.describe_event_stream",
    ],
    "ENUM_NAME_OVERRIDES": {
        "InteractionTypeEnum": "channels_app.models.conversations.InteractionType",
        "BusinessAttributeTypeEnum": "channels_app.choices.BusinessAttributeType",
        "CampaignStateEnum": "channels_app.models.campaigns.CampaignState",
        "InteractionStateEnum": "channels_app.models.conversations.InteractionState",
        "MessageAttachmentStatusEnum": "channels_app.models.media.MessageAttachmentStatus",
        "MessageStatusEnum": "channels_app.models.conversations.MessageStatus",
    },
}

# --- Security (production) ------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
# The HTTPS-only settings follow HTTPS_ONLY, not DEBUG: `make run` serves plain http://127.0.0.1:8000 with
# DEBUG off, and a redirect to https:// there would lock everyone out. Production sets HTTPS_ONLY=true
# (README, "Production"), and `check --deploy` is clean with it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=False)
if HTTPS_ONLY:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # /healthz is probed over plain HTTP by load balancers.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Outbound requests and inbound text (API.md, "Safe by default") --------------
# Networks a webhook may reach although they are internal (loopback, private...), e.g. 127.0.0.0/8 for a
# receiver on the same machine; channels_app/outbound.py holds the rules.
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
# The longest customer text /nexus takes, in bytes of UTF-8 (channels_app/text_rules.py).
MAX_INBOUND_TEXT_BYTES = env.int("MAX_INBOUND_TEXT_BYTES", default=64 * 1024)

# --- WhatsApp Cloud API ----------------------------------------------------------------
# Meta's Graph API, or a stand-in (tests/graph_stand_in.py); its host is checked by the outbound rules too.
# https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
GRAPH_API_BASE = env("GRAPH_API_BASE", default="https://graph.facebook.com/v21.0")
# Message templates created per WhatsApp Business Account in an hour (Meta allows 100; we stay at it).
WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR = env.int("WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR", default=100)
# The largest customer media file fetched from the Graph API (Meta's largest, a document, is 100 MB).
WHATSAPP_MEDIA_MAX_BYTES = env.int("WHATSAPP_MEDIA_MAX_BYTES", default=100 * 1024 * 1024)

# --- Recovery timings --------------------------------------------------------------
# How long a worker owns a delivery or a campaign batch it claimed; after a
# worker dies, its work is taken over once these run out (docs/RELIABILITY.md).
DELIVERY_LEASE_SECONDS = env.float("DELIVERY_LEASE_SECONDS", default=30.0)
DELIVERY_RELAY_GRACE_SECONDS = env.float("DELIVERY_RELAY_GRACE_SECONDS", default=60.0)
CAMPAIGN_CLAIM_LEASE_SECONDS = env.float("CAMPAIGN_CLAIM_LEASE_SECONDS", default=120.0)
CAMPAIGN_STALLED_SECONDS = env.float("CAMPAIGN_STALLED_SECONDS", default=15.0)

# --- Channel circuit ----------------------------------------------------------------
# The deliveries in a row after which a channel is down: what counts is CIRCUIT_RULE
# (channels_app/models/configuration.py), worded once.
CIRCUIT_FAILURE_THRESHOLD = env.int("CIRCUIT_FAILURE_THRESHOLD", default=5)

# --- Request size -----------------------------------------------------------------
# A campaign's audience posted as JSON can be large; a bigger body is refused with 413 before it is read
# (channels_app/request_limits.py). Uploads (multipart) may be larger: attachments go up to 100 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=32 * 1024 * 1024)
# An audience CSV of more lines than this is read by a worker (the bulk lane) in chunks, with its progress on
# the campaign, instead of in the request: ~100 µs a row, so a million rows would outlast any web timeout.
AUDIENCE_INLINE_ROWS = env.int("AUDIENCE_INLINE_ROWS", default=20_000)
UPLOAD_MAX_SIZE = env.int("UPLOAD_MAX_SIZE", default=101 * 1024 * 1024)

# --- Logging ------------------------------------------------------------------
# Readable text by default; LOG_FORMAT=json: one JSON object a line on standard output from every process, with
# the trace id and the ids of what the line is about; LOG_PERSONAL_DATA=true shows phone numbers and texts
# (masked otherwise); LOG_TRAFFIC=true adds a line per message received, queued and attempted
# (project/logs.py, docs/OPERATIONS.md "Logs").
LOG_FORMAT = log_format()
LOGGING = logging_config(level=env("LOG_LEVEL", default="INFO"))

# --- Data lifecycle (README, "Your customers' data") ---------------------------------
# After each batch the purge pauses this many times as long as the batch took, so the traffic beside it keeps
# its rate on a busy machine (0: no pause; the daily purge then finishes sooner and costs the traffic more).
PURGE_PAUSE_RATIO = env.float("PURGE_PAUSE_RATIO", default=1.0)

# --- Operations -------------------------------------------------------------------
# GET /metrics answers these networks only (the connection's address), 403 to others.
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(network, strict=False)
    for network in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
]
