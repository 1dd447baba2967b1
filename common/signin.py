"""The one sign-in policy of every door that checks a password: the admin login, HTTP Basic and
`POST /api/v1/auth/token` (through the authentication backend below), `authinfo` and `func=auth`
on /billmgr (through `password_signin`).

- Brake: an attempt is counted before the password is checked, per (user name, network) and per
  network (common/throttle.py, scopes `auth` and `auth_address`; a network is an IPv4 address or
  an IPv6 /64, common.net.brake_network); a success gives it back. So an attacker elsewhere
  cannot lock the owner out, and wrong DigiPay tokens spend the same per-network budget
  (`address_brake_take`).
- Per-user cap: an attempt from a network the user has not signed in from lately
  (SIGNIN_KNOWN_DAYS) also counts per user name (scope `auth_user`, a large budget), so guesses
  spread over many networks are capped too; the owner's own networks are spared it, so such a
  guesser cannot lock the owner out of them.
- Cost: a verified (user, password) is remembered for a short while as a keyed digest (HMAC with
  SECRET_KEY over the user's id, their stored password hash and the password) in the cache. A
  call whose credentials match a remembered digest is let in before any brake is touched: only
  the right password can match, so it needs no brake, holds no unit of a budget and writes
  nothing. A wrong password never matches, so it always pays the full hash and counts. The
  stored hash is part of the digest: a password change makes every remembered digest
  unreachable at once.
- Sessions: a password change or a deactivation ends the user's func-door sessions and API tokens
  (`credentials_changed`, sent from the user model's save signals: the one place every way of
  changing a password passes, the admin, `changepassword` and `set_password` alike). Rehashing
  the same password under a newer hasher at sign-in is no change: it is written without a save.
"""

import datetime
import hashlib
import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal
from django.utils import timezone

from common.models import SigninNetwork
from common.net import brake_network, client_ip
from common.throttle import ScopedKey, brake_give_back, brake_take


def _name_key(username: str) -> str:
    return f"user:{username.strip().lower()}"


def signin_keys(username: str, network: str, *, known_network: bool) -> list[ScopedKey]:
    """The brake keys one attempt counts on; `network` as common.net.brake_network gives it."""
    user = _name_key(username)
    keys = [("auth", f"{user}|ip:{network}"), ("auth_address", f"ip:{network}")]
    return keys if known_network else [*keys, ("auth_user", user)]


def _address_keys(ip: str | None) -> list[ScopedKey]:
    return [("auth_address", f"ip:{brake_network(ip)}")]


def address_brake_take(ip: str | None) -> None:
    """Count a secret-guessing attempt (a DigiPay token) against the address; Throttled when over."""
    brake_take(keys=_address_keys(ip))


def address_brake_give_back(ip: str | None) -> None:
    brake_give_back(keys=_address_keys(ip))


# Remembered credentials -------------------------------------------------------------------------


def _cache_key(user: AbstractBaseUser, password: str) -> str:
    message = f"signin\x00{user.pk}\x00{user.password}\x00{password}".encode()
    return "signin:" + hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _remembered(user: AbstractBaseUser, password: str) -> bool:
    return bool(cache.get(_cache_key(user, password)))


def _remember(user: AbstractBaseUser, password: str) -> None:
    if settings.SIGNIN_CACHE_SECONDS > 0:
        cache.set(_cache_key(user, password), True, settings.SIGNIN_CACHE_SECONDS)


# The user's own networks ------------------------------------------------------------------------


def _network_key(username: str, network: str) -> str:
    # Hashed, as the brake's keys are: the table holds no user names or addresses.
    return hashlib.sha256(f"known:{_name_key(username)}|ip:{network}".encode()).hexdigest()


def _known_since(at: datetime.datetime) -> datetime.datetime:
    return at - datetime.timedelta(days=settings.SIGNIN_KNOWN_DAYS)


def _is_known(username: str, network: str, at: datetime.datetime) -> bool:
    key = _network_key(username, network)
    return SigninNetwork.objects.filter(key=key, last_signin__gte=_known_since(at)).exists()


def _note_network(username: str, network: str, at: datetime.datetime) -> None:
    """Remember that the user signed in from this network now; forget networks not seen lately."""
    SigninNetwork.objects.bulk_create(
        [SigninNetwork(key=_network_key(username, network), last_signin=at)],
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["last_signin"],
    )
    SigninNetwork.objects.filter(last_signin__lt=_known_since(at)).delete()


# Checking a password ----------------------------------------------------------------------------


def _named_user(username: str) -> AbstractBaseUser | None:
    if "\x00" in username:
        return None  # no user has one, and PostgreSQL cannot even compare it
    users = get_user_model()
    try:
        return users._default_manager.get_by_natural_key(username)
    except users.DoesNotExist:
        return None


def _verify(user: AbstractBaseUser | None, password: str) -> bool:
    """Whether the password is the user's (always a full hash, for a missing user too)."""
    if user is None:
        get_user_model()().set_password(password)  # as long as for a real user: no name oracle
        return False
    checked = user.password
    rehashed: list[int] = []

    def keep_rehash(raw_password: str) -> None:
        # The stored hash is out of date (a newer hasher or more iterations): the same password
        # is written again by a guarded update, not a save, so it is no password change to the
        # save signals (sessions and tokens stay) and never overwrites a password changed since.
        user.set_password(raw_password)
        user._password = None
        rows = type(user)._default_manager.filter(pk=user.pk, password=checked)
        rehashed.append(rows.update(password=user.password))

    if not check_password(password, checked, keep_rehash) or not user.is_active:
        return False  # an inactive user pays the hash too: no oracle of who is deactivated
    return rehashed != [0]  # 0: the password changed while this one was being checked


def password_signin(*, username: str, password: str, ip: str | None) -> AbstractBaseUser | None:
    """The user these credentials name, or None; raises common.throttle.Throttled when braked.

    A burst of parallel first calls with the right password (nothing remembered yet) holds one
    unit of the (user, network) budget per call while each hash runs: more than
    THROTTLE_AUTH_FAILURES of them at once from one network are refused beyond the budget; a
    retry after the first verified call is let in from the cache.
    """
    user = _named_user(username)
    if user is not None and user.is_active and _remembered(user, password):
        return user
    at, network = timezone.now(), brake_network(ip)
    # Asked for every name, a missing user's too (it has no network): the same queries either way.
    keys = signin_keys(username, network, known_network=_is_known(username, network, at))
    brake_take(keys=keys, at=at)
    if not _verify(user, password):
        return None
    brake_give_back(keys=keys, at=at)  # the window it was counted in, even if one began since
    _remember(user, password)  # under the hash now stored, if the check upgraded it
    _note_network(username, network, at)
    return user


class BrakedModelBackend(ModelBackend):
    """Django's model backend under the sign-in policy; `authenticate()` raises Throttled when the
    brake refuses, so each door can say so in its own way."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        ip = client_ip(request) if request is not None else None
        return password_signin(username=str(username), password=password, ip=ip)


# Sent with `user` after a save that changed the user's password or deactivated them; whatever
# signed in with the old credentials listens and ends itself (API tokens here, func-door sessions
# in billmgr_api).
credentials_changed = Signal()

_WATCHED = {"password", "is_active"}


def _note_credentials(sender, instance, update_fields=None, **kwargs) -> None:
    """pre_save: remember whether this save changes the password or deactivates the user."""
    instance._credentials_changed = False
    if instance.pk is None or (update_fields is not None and not _WATCHED & set(update_fields)):
        return
    before = sender._default_manager.filter(pk=instance.pk).values("password", "is_active").first()
    instance._credentials_changed = before is not None and (
        before["password"] != instance.password or (before["is_active"] and not instance.is_active)
    )


def _announce_credentials(sender, instance, **kwargs) -> None:
    """post_save: tell the listeners, once the new credentials are saved."""
    if getattr(instance, "_credentials_changed", False):
        instance._credentials_changed = False
        credentials_changed.send(sender=sender, user=instance)


def _end_api_tokens(sender, user, **kwargs) -> None:
    from rest_framework.authtoken.models import Token

    Token.objects.filter(user=user).delete()


def connect_signals() -> None:
    users = get_user_model()
    pre_save.connect(_note_credentials, sender=users, dispatch_uid="signin-note")
    post_save.connect(_announce_credentials, sender=users, dispatch_uid="signin-announce")
    credentials_changed.connect(_end_api_tokens, dispatch_uid="signin-end-tokens")


def minutes_left(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
