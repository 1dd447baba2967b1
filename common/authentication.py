"""REST authentication: DRF's token scheme with its lookup written by hand.

Measured need: DRF's `Token.objects.select_related("user").get(key=...)` cost 1.5 ms of CPU per
request on the redemption path (bench/http_load.py profiles), most of it building the queryset.
The same statement, written once, answers the same user; everything else is DRF's.
"""

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from common.rawsql import Columns

_TOKEN = Columns(Token, "key", "user_id", "created", alias="t")


class TokenAuthentication(authentication.TokenAuthentication):
    _user: Columns | None = None

    @classmethod
    def _user_columns(cls) -> Columns:
        if cls._user is None:
            model = get_user_model()
            cls._user = Columns(model, *(f.attname for f in model._meta.concrete_fields), alias="u")
        return cls._user

    def authenticate_credentials(self, key):
        users = self._user_columns()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {_TOKEN.sql()}, {users.sql()} FROM {_TOKEN.table} t "
                f"JOIN {users.table} u ON u.id = t.user_id WHERE t.key = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = _TOKEN.instance(row[:3]), users.instance(row[3:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token
