"""Settings from the environment: DATABASE_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS, REDIS_URL, ...

Every variable is listed with its default in README.md's "Configuration".
"""

import datetime
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool = False) -> bool:
    return os.environ.get(name, "1" if default else "0").strip().lower() in {
        "1",
        "true",
        "yes",
        "on",
    }


DEBUG = env_flag("DEBUG", default=False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set unless DEBUG=1")
    SECRET_KEY = "insecure-development-key-only-for-debug"

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    # django.contrib.admin, with the cockpit's site (dashboard/sites.py)
    "dashboard.apps.CockpitAdminConfig",
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
    "django_tasks",
    "django_tasks_db",
    "common",
    "billing",
    "referrals",
    "promotions",
    "billmgr_api",
    "digipay_api",
    "ops",
    "dashboard",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Counts and times the quote and redemption doors (and brake refusals) for /metrics.
    "ops.metrics.RequestMetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# Persistent connections (CONN_MAX_AGE seconds, 0 = one per request) with a health check before a
# reused connection serves a request, so a restarted database or PgBouncer costs no failed request.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default queues its writers instead of answering "database is locked": every
    # transaction takes the write lock when it begins (a reader upgrading to a writer inside a
    # transaction cannot wait, it fails at once), waiting up to SQLITE_BUSY_TIMEOUT seconds for it;
    # WAL lets readers (progress pages, quotes) go on while a writer works.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": float(os.environ.get("SQLITE_BUSY_TIMEOUT", "20")),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        **DATABASES["default"].get("OPTIONS", {}),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that skips the round trip on a quiet connection.
    DATABASES["default"]["ENGINE"] = "common.postgresql"
    # Server-side binding, and psycopg prepares a statement a connection has run 5 times: the
    # database then skips parsing and planning it. Measured on the redemption (17 statements):
    # the database's CPU per redemption fell from 4.7 to 2.8 ms (bench/http_load.py).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=5
    )
if env_flag("PGBOUNCER"):
    # Behind PgBouncer in transaction pooling mode a connection is ours only for one transaction:
    # no server-side (named) cursors, and no prepared statements (PgBouncer before 1.21 does not
    # carry them from one server connection to the next).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Dates and moments are shown one way everywhere (config/formats, common.money.moment_format).
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Idle BILLmanager-door sessions end after this many seconds.
BILLMGR_SESSION_IDLE_SECONDS = int(os.environ.get("BILLMGR_SESSION_IDLE_SECONDS", "3600"))
# Every session (func door and admin) ends this long after sign-in, however busy.
SESSION_MAX_SECONDS = int(os.environ.get("SESSION_MAX_SECONDS", "43200"))
SESSION_COOKIE_AGE = SESSION_MAX_SECONDS
# Rows per page of a func-style list when the client sends no p_cnt.
BILLMGR_DEFAULT_PAGE_SIZE = int(os.environ.get("BILLMGR_DEFAULT_PAGE_SIZE", "100"))

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "common.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.DjangoModelPermissions"],
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "common.apis.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "common.negotiation.ContentNegotiation",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Promotions and referrals engine",
    "VERSION": "1.0.0",
    # Swagger UI and Redoc from this server (drf-spectacular-sidecar), so the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The DigiPay door's integer choice sets, each under one name.
    "ENUM_NAME_OVERRIDES": {
        "DigiPayRewardTypeEnum": "digipay_api.mapping.REWARD_TYPE_CHOICES",
        "DigiPayReferralForEnum": "digipay_api.mapping.REFERRAL_FOR_CHOICES",
        "DigiPayRewardUsersEnum": "digipay_api.mapping.REWARD_USERS_CHOICES",
        "DigiPayStatusEnum": "digipay_api.mapping.STATUS_CHOICES",
        "DigiPayWritableStatusEnum": "digipay_api.mapping.WRITABLE_STATUS_CHOICES",
        "DigiPayFlagEnum": "digipay_api.mapping.FLAG_CHOICES",
        "DigiPaySuccessEnum": "digipay_api.mapping.SUCCESS_CHOICES",
        "DigiPayFailureEnum": "digipay_api.mapping.FAILURE_CHOICES",
    },
}

# Every log line, request lines included, goes through the filter that masks credentials.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "common.logging.RedactSecrets"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Every door that checks a password signs in under one policy (common/signin.py).
AUTHENTICATION_BACKENDS = ["common.signin.BrakedModelBackend"]
# A REST token found valid answers without its lookup for this long, per process (a revocation
# is seen at once by the process that made it, by the others within this time); 0: never.
API_TOKEN_CACHE_SECONDS = float(os.environ.get("API_TOKEN_CACHE_SECONDS", "2"))
# Verified credentials skip the slow hash for this long (a keyed digest in the cache); 0: never.
SIGNIN_CACHE_SECONDS = int(os.environ.get("SIGNIN_CACHE_SECONDS", "300"))

# Brakes on brute force (common/throttle.py): failures allowed per window, per key; an address is
# counted on its network (an IPv6 address on its /64). Sign-ins: per (user name, network), per
# network whoever signs in (wrong DigiPay tokens count here), and per user name from networks the
# user has not signed in from in SIGNIN_KNOWN_DAYS (guesses spread over many networks).
THROTTLE_AUTH_FAILURES = int(os.environ.get("THROTTLE_AUTH_FAILURES", "10"))
THROTTLE_AUTH_ADDRESS_FAILURES = int(os.environ.get("THROTTLE_AUTH_ADDRESS_FAILURES", "30"))
THROTTLE_AUTH_USER_FAILURES = int(os.environ.get("THROTTLE_AUTH_USER_FAILURES", "100"))
THROTTLE_AUTH_SECONDS = int(os.environ.get("THROTTLE_AUTH_SECONDS", "300"))
SIGNIN_KNOWN_DAYS = int(os.environ.get("SIGNIN_KNOWN_DAYS", "30"))
# Public link clicks (referralprogram.registerclick) per address.
THROTTLE_CLICK_REQUESTS = int(os.environ.get("THROTTLE_CLICK_REQUESTS", "60"))
THROTTLE_CLICK_SECONDS = int(os.environ.get("THROTTLE_CLICK_SECONDS", "600"))
THROTTLE_PROMOCODE_FAILURES = int(os.environ.get("THROTTLE_PROMOCODE_FAILURES", "20"))
THROTTLE_PROMOCODE_SECONDS = int(os.environ.get("THROTTLE_PROMOCODE_SECONDS", "600"))
# An authenticated caller (an integration quoting for all its clients) has a budget of its own.
THROTTLE_PROMOCODE_CALLER_FAILURES = int(
    os.environ.get("THROTTLE_PROMOCODE_CALLER_FAILURES", "1000")
)

# How many proxies of ours stand in front of the app (each appends to X-Forwarded-For); 0 trusts
# REMOTE_ADDR alone. Brakes, history and logs key on the address this gives.
TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS", "0"))

# From how many codes the admin's "Generate promo codes" runs in the background.
PROMOCODES_BACKGROUND_FROM = int(os.environ.get("PROMOCODES_BACKGROUND_FROM", "500"))
# The longest window a promotion's backtest replays, in days.
BACKTEST_MAX_DAYS = int(os.environ.get("BACKTEST_MAX_DAYS", "366"))

REDIS_URL = os.environ.get("REDIS_URL", "")

# Django's cache framework: local memory per process by default, Redis shared by every app server
# when REDIS_URL is set. What it holds is keyed by what makes it valid (compiled rules by the rules
# version, a verified sign-in's digest by the stored password hash) or a few seconds old at most
# (/metrics' database figures).
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "promo"),
            "TIMEOUT": int(os.environ.get("CACHE_TIMEOUT", "3600")),
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "TIMEOUT": int(os.environ.get("CACHE_TIMEOUT", "3600")),
            "OPTIONS": {"MAX_ENTRIES": int(os.environ.get("CACHE_MAX_ENTRIES", "1000"))},
        }
    )
}

# Background jobs (common/jobs.py) run on Django's Tasks API in a worker process (`make worker`):
# the database backend by default (no other service), RQ on Redis with TASKS_BACKEND=rq.
TASKS_BACKEND = os.environ.get("TASKS_BACKEND", "database")
JOBS_QUEUE = os.environ.get("JOBS_QUEUE", "default")
# Tasks are declared on "default" and sent to JOBS_QUEUE; a backend must know both.
_TASK_QUEUES = sorted({"default", JOBS_QUEUE})
if TASKS_BACKEND == "rq":
    INSTALLED_APPS.append("django_rq")
    RQ_URL = os.environ.get("RQ_URL", REDIS_URL or "redis://127.0.0.1:6379/0")
    # No job timeout: a job ends by itself, fails, or is found lost by its missing heartbeat.
    RQ_QUEUES = {q: {"URL": RQ_URL, "DEFAULT_TIMEOUT": -1} for q in _TASK_QUEUES}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": _TASK_QUEUES}}
elif TASKS_BACKEND == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": _TASK_QUEUES}}
else:
    raise ImproperlyConfigured("TASKS_BACKEND is database or rq")
# How many jobs run at once over all workers, however many workers there are.
JOBS_MAX_RUNNING = int(os.environ.get("JOBS_MAX_RUNNING", "2"))
# Attempts of a job whose work failed on a transient database error (deadlock, lost connection, ...).
JOBS_MAX_ATTEMPTS = int(os.environ.get("JOBS_MAX_ATTEMPTS", "3"))
# A running job's worker beats this often; a job without a beat for JOBS_LOST_AFTER is failed.
JOBS_HEARTBEAT_SECONDS = float(os.environ.get("JOBS_HEARTBEAT_SECONDS", "10"))
JOBS_LOST_AFTER = float(os.environ.get("JOBS_LOST_AFTER", "45"))
# A queued job whose task is no longer in the queue (its enqueue failed, its task failed before it
# took the job) is queued again by the workers' sweep this many seconds after it was queued.
JOBS_REQUEUE_AFTER = float(os.environ.get("JOBS_REQUEUE_AFTER", "120"))
# Run background jobs in the request's thread once it commits (single-process debugging).
JOBS_INLINE = env_flag("JOBS_INLINE", default=False)

# Scheduled accrual of referral rewards, run by the workers: every ACCRUAL_EVERY_HOURS hours from
# ACCRUAL_AT (local time of day); 0 hours turns the schedule off.
ACCRUAL_EVERY_HOURS = float(os.environ.get("ACCRUAL_EVERY_HOURS", "24"))
ACCRUAL_AT = os.environ.get("ACCRUAL_AT", "03:00")
try:
    datetime.time.fromisoformat(ACCRUAL_AT)
except ValueError:
    raise ImproperlyConfigured(
        f"ACCRUAL_AT is a time of day as HH:MM, not {ACCRUAL_AT!r}"
    ) from None

# /metrics answers a bearer METRICS_TOKEN, or callers from METRICS_ALLOWED_NETWORKS.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = [
    n.strip()
    for n in os.environ.get("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128").split(",")
    if n.strip()
]
# Figures /metrics reads from the database are this many seconds old at most.
METRICS_DATABASE_SECONDS = float(os.environ.get("METRICS_DATABASE_SECONDS", "10"))
# /readyz shows whether a worker was seen within this many seconds, and fails on it only when asked
# (/readyz?worker=1); 0: no worker needed (e.g. JOBS_INLINE).
READYZ_WORKER_SECONDS = float(os.environ.get("READYZ_WORKER_SECONDS", "60"))
