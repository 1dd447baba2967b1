"""The one sign-in policy of every door that checks a password: the admin login, HTTP Basic and
`POST /api/v1/auth/token` (through the authentication backend below), `authinfo` and `func=auth`
on /billmgr (through `password_signin`).

- Brake: an attempt is counted before the password is checked, per (user name, address) and per
  address (common/throttle.py, scopes `auth` and `auth_address`); a success gives it back. So an
  attacker elsewhere cannot lock the owner out, and wrong DigiPay tokens spend the same per-address
  budget (`address_brake_take`).
- Cost: a verified (user, password) is remembered for a short while as a keyed digest (HMAC with
  SECRET_KEY over the user's id, their stored password hash and the password) in the cache, so a
  repeated correct call skips the deliberately slow hash; a wrong password never matches a digest,
  so it always pays the full hash. The stored hash is part of the digest: a password change makes
  every remembered digest unreachable at once.
- Sessions: a password change or a deactivation ends the user's func-door sessions and API tokens
  (`credentials_changed`, sent from the user model's save signals: the one place every way of
  changing a password passes, the admin, `changepassword` and `set_password` alike).
"""

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal
from django.utils import timezone

from common.net import client_ip
from common.throttle import ScopedKey, brake_give_back, brake_take


def signin_keys(username: str, ip: str | None) -> list[ScopedKey]:
    address = ip or "unknown"
    return [("auth", f"user:{username.strip().lower()}|ip:{address}"), *address_keys(ip)]


def address_keys(ip: str | None) -> list[ScopedKey]:
    return [("auth_address", f"ip:{ip or 'unknown'}")]


def address_brake_take(ip: str | None) -> None:
    """Count a secret-guessing attempt (a DigiPay token) against the address; Throttled when over."""
    brake_take(keys=address_keys(ip))


def address_brake_give_back(ip: str | None) -> None:
    brake_give_back(keys=address_keys(ip))


def _digest(user: AbstractBaseUser, password: str) -> str:
    message = f"signin\x00{user.pk}\x00{user.password}\x00{password}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _cache_key(user: AbstractBaseUser, password: str) -> str:
    return f"signin:{_digest(user, password)}"


def _verify(username: str, password: str) -> AbstractBaseUser | None:
    users = get_user_model()
    try:
        user = users._default_manager.get_by_natural_key(username)
    except users.DoesNotExist:
        users().set_password(password)  # as long as for a real user: no name oracle by timing
        return None
    if user.is_active and cache.get(_cache_key(user, password)):
        return user
    if not user.check_password(password) or not user.is_active:
        return None  # an inactive user pays the hash too: no oracle of who is deactivated
    # check_password may have upgraded the stored hash: the digest takes the one now stored.
    if settings.SIGNIN_CACHE_SECONDS > 0:
        cache.set(_cache_key(user, password), True, settings.SIGNIN_CACHE_SECONDS)
    return user


def password_signin(*, username: str, password: str, ip: str | None) -> AbstractBaseUser | None:
    """The user these credentials name, or None; raises common.throttle.Throttled when braked."""
    keys, at = signin_keys(username, ip), timezone.now()
    brake_take(keys=keys, at=at)
    user = _verify(username, password)
    if user is not None:
        brake_give_back(keys=keys, at=at)  # the window it was counted in, even if one began since
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
