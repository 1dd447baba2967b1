"""Who is calling: `authinfo=USER:PASSWORD` on every call, or a session from `func=auth`, sent back
as `auth=ID` or in the cookie `billmgrses5` (as BILLmanager's own pages and helpers do).

Passwords are checked under the one sign-in policy of every door (common/signin.py). A session
ends after an idle hour, after its absolute lifetime however busy, and when its user's password
changes or the user is deactivated (`end_sessions`).
"""

import datetime
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from billmgr_api.errors import FuncError
from billmgr_api.models import BillmgrSession
from common.signin import password_signin
from common.throttle import Throttled

SESSION_COOKIE = "billmgrses5"

# BILLmanager's access levels as `func=auth` names them: operators act at the admin level.
LEVEL_ADMIN, LEVEL_USER = "28", "16"


def level_of(user: AbstractBaseUser) -> str:
    return LEVEL_ADMIN if user.is_staff or user.is_superuser else LEVEL_USER


def login(*, username: str, password: str, ip: str | None = None) -> BillmgrSession:
    """Check the password and open a session."""
    user = _check_password(username, password, ip)
    return BillmgrSession.objects.create(
        key=secrets.token_hex(16), user=user, last_seen=timezone.now()
    )


def logout(*, session_id: str) -> None:
    if session_id:
        BillmgrSession.objects.filter(key=session_id).delete()


def end_sessions(sender=None, *, user: AbstractBaseUser, **kwargs) -> None:
    """The user's password changed or they were deactivated: every session of theirs ends."""
    BillmgrSession.objects.filter(user=user).delete()


def _check_password(username: str, password: str, ip: str | None) -> AbstractBaseUser:
    if not username or not password:
        raise FuncError("auth", "username", "Give a user name and a password")
    try:
        user = password_signin(username=username, password=password, ip=ip)
    except Throttled as exc:
        raise FuncError(
            "limit",
            "username",
            f"Too many failed sign-ins; try again in {exc.retry_after} seconds",
        ) from None
    if user is None:
        raise FuncError("auth", "", "Wrong user name or password")
    return user


def session_id_of(request: HttpRequest, params: dict[str, str]) -> tuple[str, bool]:
    """The session the request names, and whether only the cookie named it."""
    named = params.get("auth", "").strip()
    if named:
        return named, False
    cookie = request.COOKIES.get(SESSION_COOKIE, "").strip()
    return cookie, bool(cookie)


def _same_site(request: HttpRequest, url: str) -> bool:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    trusted = {o.lower() for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    own = f"{request.scheme}://{request.get_host()}".lower()
    return origin == own or origin in trusted


CROSS_SITE = "A session cookie is not accepted from another site; send auth="
NOT_FROM_OUR_PAGES = (
    "A change signed in by the session cookie alone must be posted from this site's pages "
    "(with Origin or Referer); send auth="
)


def refuse_cross_site(request: HttpRequest, *, writes: bool) -> None:
    """A call signed in by the cookie alone must come from our own pages, so the cookie never
    makes the door CSRF-able. Any such call naming another site in Origin (or, without Origin,
    in Referer; the opaque `null` origin too) is refused. A write must also be a POST that names
    this site: SameSite=Strict still sends the cookie from a sibling subdomain, and a page can
    suppress both headers (`<img referrerpolicy="no-referrer" src=...>` is a GET without them).
    Clients that send `auth=` or `authinfo=` are not browsers acting on a user's behalf and are
    not concerned; a read by the cookie alone (a keepalive) needs no header."""
    origin = request.headers.get("Origin")
    source = origin if origin is not None else (request.headers.get("Referer") or None)
    if source is not None and (source == "null" or not _same_site(request, source)):
        raise FuncError("access", "", CROSS_SITE)
    if writes and (request.method != "POST" or source is None):
        raise FuncError("access", "", NOT_FROM_OUR_PAGES)


def identify(
    request: HttpRequest, params: dict[str, str], ip: str | None, *, writes: bool
) -> AbstractBaseUser:
    """The user behind the request's `authinfo`, `auth` or session cookie; an `auth` error when
    there is none. `writes`: whether the call may change anything (see `refuse_cross_site`)."""
    if params.get("authinfo"):
        username, _, password = params["authinfo"].partition(":")
        return _check_password(username, password, ip)
    session_id, cookie_only = session_id_of(request, params)
    if not session_id:
        raise FuncError("auth", "", "Authenticate with authinfo=USER:PASSWORD or auth=SESSION")
    if cookie_only:
        refuse_cross_site(request, writes=writes)
    now = timezone.now()
    idle = datetime.timedelta(seconds=settings.BILLMGR_SESSION_IDLE_SECONDS)
    lifetime = datetime.timedelta(seconds=settings.SESSION_MAX_SECONDS)
    session = BillmgrSession.objects.select_related("user").filter(key=session_id).first()
    if session is None or not session.user.is_active:
        raise FuncError("auth", "", "Unknown session; authenticate again")
    if session.last_seen < now - idle or session.created_at < now - lifetime:
        session.delete()
        raise FuncError("auth", "", "The session has expired; authenticate again")
    BillmgrSession.objects.filter(pk=session.pk).update(last_seen=now)
    return session.user
