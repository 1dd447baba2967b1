"""Production: the base settings, refusing to start when unsafe, with HTTPS hardening on.

`make serve` uses these. They refuse DEBUG, a missing, default or weak SECRET_KEY, ALLOWED_HOSTS
of `*` or nothing, and /metrics open to whatever a proxy on the same host forwards;
`python manage.py check --deploy` is clean under them.
"""

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured

from config.settings import *  # noqa: F403
from config.settings import (
    BASE_DIR,
    DEBUG,
    METRICS_ALLOWED_NETWORKS,
    METRICS_TOKEN,
    MIDDLEWARE,
    SECRET_KEY,
    TRUSTED_PROXY_HOPS,
    env_flag,
)

KNOWN_SECRETS = {"insecure-development-key-only-for-debug", "change-me", "secret", "bench"}

if DEBUG:
    raise ImproperlyConfigured("Production settings refuse DEBUG=1.")
if SECRET_KEY in KNOWN_SECRETS or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured(
        "Production settings need SECRET_KEY: 50 or more random characters, not a default."
    )
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("Production settings need ALLOWED_HOSTS naming the hosts, not *.")
# Without a counted proxy hop the caller's address is the connection's: behind a proxy on the same
# host every request comes from loopback, so an allowed loopback network lets everyone read.
_LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
if (
    not METRICS_TOKEN
    and not TRUSTED_PROXY_HOPS
    and any(
        ipaddress.ip_network(network, strict=False).overlaps(loopback)
        for network in METRICS_ALLOWED_NETWORKS
        for loopback in _LOOPBACK
    )
):
    raise ImproperlyConfigured(
        "Production settings refuse /metrics open to loopback with TRUSTED_PROXY_HOPS=0 (behind a "
        "proxy on the same host, that is everyone): set METRICS_TOKEN, or METRICS_ALLOWED_NETWORKS "
        "naming the monitoring networks, or TRUSTED_PROXY_HOPS."
    )

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_flag("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Static files from the app servers themselves, collected by `make serve`, right after security.
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
