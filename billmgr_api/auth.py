"""Who is calling: `authinfo=USER:PASSWORD` on every call, or a session from `func=auth`."""

import datetime
import secrets

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from billmgr_api.errors import FuncError
from billmgr_api.models import BillmgrSession
from common.throttle import Throttled, throttle_give_back, throttle_take


def login(*, username: str, password: str, ip: str | None = None) -> str:
    """Check the password and open a session; answers the session id."""
    user = _check_password(username, password, ip)
    now = timezone.now()
    session = BillmgrSession.objects.create(key=secrets.token_hex(16), user=user, last_seen=now)
    return session.key


def logout(*, session_id: str) -> None:
    BillmgrSession.objects.filter(key=session_id).delete()


def _check_password(username: str, password: str, ip: str | None) -> AbstractBaseUser:
    if not username or not password:
        raise FuncError("auth", "username", "Give a user name and a password")
    keys = [f"user:{username.lower()}", f"ip:{ip}" if ip else ""]
    try:
        throttle_take(scope="auth", keys=keys)
    except Throttled as exc:
        raise FuncError(
            "limit",
            "username",
            f"Too many failed sign-ins; try again in {exc.retry_after} seconds",
        ) from None
    user = authenticate(username=username, password=password)
    if user is None:
        raise FuncError("auth", "", "Wrong user name or password")
    throttle_give_back(scope="auth", keys=keys)
    return user


def identify(params: dict[str, str], ip: str | None = None) -> AbstractBaseUser:
    """The user behind the request's `authinfo` or `auth`; an `auth` error when there is none."""
    if params.get("authinfo"):
        username, _, password = params["authinfo"].partition(":")
        return _check_password(username, password, ip)
    session_id = params.get("auth", "").strip()
    if not session_id:
        raise FuncError("auth", "", "Authenticate with authinfo=USER:PASSWORD or auth=SESSION")
    now = timezone.now()
    idle = datetime.timedelta(seconds=settings.BILLMGR_SESSION_IDLE_SECONDS)
    session = BillmgrSession.objects.select_related("user").filter(key=session_id).first()
    if session is None or not session.user.is_active:
        raise FuncError("auth", "", "Unknown session; authenticate again")
    if session.last_seen < now - idle:
        session.delete()
        raise FuncError("auth", "", "The session has expired; authenticate again")
    BillmgrSession.objects.filter(pk=session.pk).update(last_seen=now)
    return session.user
