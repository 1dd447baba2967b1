"""Settings from the environment: DATABASE_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS."""

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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "common",
    "billing",
    "referrals",
    "promotions",
    "billmgr_api",
    "digipay_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Idle BILLmanager-door sessions end after this many seconds.
BILLMGR_SESSION_IDLE_SECONDS = int(os.environ.get("BILLMGR_SESSION_IDLE_SECONDS", "3600"))
# Rows per page of a func-style list when the client sends no p_cnt.
BILLMGR_DEFAULT_PAGE_SIZE = int(os.environ.get("BILLMGR_DEFAULT_PAGE_SIZE", "100"))

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.DjangoModelPermissions"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Promotions and referrals engine",
    "VERSION": "1.0.0",
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

# Brakes on brute force (common/throttle.py): failures allowed per window, per key.
THROTTLE_AUTH_FAILURES = int(os.environ.get("THROTTLE_AUTH_FAILURES", "10"))
THROTTLE_AUTH_SECONDS = int(os.environ.get("THROTTLE_AUTH_SECONDS", "300"))
THROTTLE_PROMOCODE_FAILURES = int(os.environ.get("THROTTLE_PROMOCODE_FAILURES", "20"))
THROTTLE_PROMOCODE_SECONDS = int(os.environ.get("THROTTLE_PROMOCODE_SECONDS", "600"))
# An authenticated caller (an integration quoting for all its clients) has a budget of its own.
THROTTLE_PROMOCODE_CALLER_FAILURES = int(
    os.environ.get("THROTTLE_PROMOCODE_CALLER_FAILURES", "1000")
)
THROTTLE_PROMOCODE_CALLER_SECONDS = int(os.environ.get("THROTTLE_PROMOCODE_CALLER_SECONDS", "600"))

# How many proxies of ours stand in front of the app (each appends to X-Forwarded-For); 0 trusts
# REMOTE_ADDR alone. Brakes, history and logs key on the address this gives.
TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS", "0"))

# From how many codes the admin's "Generate promo codes" runs in the background.
PROMOCODES_BACKGROUND_FROM = int(os.environ.get("PROMOCODES_BACKGROUND_FROM", "500"))
# Run background jobs in the request's thread once it commits (tests, single-process debugging).
JOBS_INLINE = env_flag("JOBS_INLINE", default=False)
