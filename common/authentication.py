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
    _columns: dict[type, tuple[Columns, Columns]] = {}  # per token model: its and its user's

    def _columns_of(self, model) -> tuple[Columns, Columns]:
        found = self._columns.get(model)
        if found is None:
            user_model = model._meta.get_field("user").related_model
            found = self._columns[model] = (
                Columns(model, *(f.attname for f in model._meta.concrete_fields), alias="t"),
                Columns(
                    user_model, *(f.attname for f in user_model._meta.concrete_fields), alias="u"
                ),
            )
        return found

    def authenticate_credentials(self, key):
        model = self.get_model()
        tokens, users = self._columns_of(model)
        q = connection.ops.quote_name
        user_field = model._meta.get_field("user")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {tokens.sql()}, {users.sql()} FROM {tokens.table} t "
                f"JOIN {users.table} u "
                f"ON u.{q(users.model._meta.pk.column)} = t.{q(user_field.column)} "
                f"WHERE t.{q(model._meta.pk.column)} = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        split = len(tokens.fields)
        token, user = tokens.instance(row[:split]), users.instance(row[split:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token
