"""REST authentication: DRF's token scheme with its lookup written by hand, and remembered.

Measured need: DRF's `Token.objects.select_related("user").get(key=...)` cost 1.5 ms of CPU per
request on the redemption path (bench/http_load.py profiles), most of it building the queryset.
The same statement, written once, answers the same user; everything else is DRF's.

A token found valid is remembered by the process for API_TOKEN_CACHE_SECONDS: its user and token
answer the next requests without the lookup (measured: the lookup's round trip was 9% of a
redemption's requests/s under gunicorn, side by side). The process forgets every remembered
token when a token, user, group or permission is saved or deleted, or a user's permissions or
groups or a group's permissions change, through the ORM (signals, `connect_signals`): at once, and
again when the change commits, so a lookup made meanwhile on another connection is not kept. A
lookup that a forgetting overtook is not stored (the generation). Another process, or a change
made without the ORM's signals (`QuerySet.update`, raw SQL), may still let a revoked token or a
deactivated user in until the entry is that old. 0 turns the memory off.
"""

import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from common.rawsql import Columns

# key -> (until when, on the monotonic clock; user; token) of the tokens found valid lately
_verified: dict[str, tuple[float, object, object]] = {}
# Past this many remembered tokens, the expired ones are dropped (only valid tokens are kept, so
# their number is the number of live integrations, not of the keys callers try).
_VERIFIED_PRUNE_AT = 1000
_clock = time.monotonic
# Bumped by every forgetting: a lookup begun before one is not stored after it.
_generation = 0
_lock = threading.Lock()


def verified_tokens_forget() -> None:
    """Forget every remembered token: the next request of each looks its token up again."""
    global _generation
    with _lock:
        _generation += 1
        _verified.clear()


def _forget_on_change(**kwargs) -> None:
    # Now, for this process's next request, and once the change commits, for a lookup another
    # connection made before it could see the change.
    verified_tokens_forget()
    transaction.on_commit(verified_tokens_forget)


def connect_signals() -> None:
    from django.contrib.auth.models import Group, Permission
    from rest_framework.authtoken.models import Token, TokenProxy

    users = get_user_model()
    for sender in (Token, TokenProxy, users, Group, Permission):
        post_save.connect(_forget_on_change, sender=sender, dispatch_uid="tokens-forget")
        post_delete.connect(_forget_on_change, sender=sender, dispatch_uid="tokens-forget")
    for through in (
        users.user_permissions.through,
        users.groups.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(_forget_on_change, sender=through, dispatch_uid="tokens-forget")


class TokenAuthentication(authentication.TokenAuthentication):
    # per token model and database vendor: the statement, and its token's and user's columns
    _lookups: dict[tuple[type, str], tuple[str, Columns, Columns]] = {}

    def _lookup(self, model) -> tuple[str, Columns, Columns]:
        key = (model, connection.vendor)
        found = self._lookups.get(key)
        if found is None:
            user_field = model._meta.get_field("user")
            user_model = user_field.related_model
            tokens = Columns(model, *(f.attname for f in model._meta.concrete_fields), alias="t")
            users = Columns(
                user_model, *(f.attname for f in user_model._meta.concrete_fields), alias="u"
            )
            q = connection.ops.quote_name
            sql = (
                f"SELECT {tokens.sql()}, {users.sql()} FROM {tokens.table} t "
                f"JOIN {users.table} u "
                f"ON u.{q(user_model._meta.pk.column)} = t.{q(user_field.column)} "
                f"WHERE t.{q(model._meta.pk.column)} = %s"
            )
            found = self._lookups[key] = (sql, tokens, users)
        return found

    def authenticate_credentials(self, key):
        now = _clock()
        remembered = _verified.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1], remembered[2]
        generation = _generation
        user, token = self._looked_up(key)
        seconds = settings.API_TOKEN_CACHE_SECONDS
        if seconds > 0:
            with _lock:
                if generation == _generation:
                    if len(_verified) >= _VERIFIED_PRUNE_AT:
                        for stale in [k for k, (until, _, _) in _verified.items() if until <= now]:
                            del _verified[stale]
                    _verified[key] = (now + seconds, user, token)
        return user, token

    def _looked_up(self, key):
        sql, tokens, users = self._lookup(self.get_model())
        with connection.cursor() as cursor:
            cursor.execute(sql, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        split = len(tokens.fields)
        token, user = tokens.instance(row[:split]), users.instance(row[split:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token
