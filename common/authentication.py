"""REST authentication: DRF's token scheme with its lookup written by hand.

Measured need: DRF's `Token.objects.select_related("user").get(key=...)` cost 1.5 ms of CPU per
request on the redemption path (bench/http_load.py profiles), most of it building the queryset.
The same statement, written once, answers the same user; everything else is DRF's.
"""

from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from common.rawsql import Columns


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
