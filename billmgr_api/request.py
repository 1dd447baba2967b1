from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from billmgr_api.errors import FuncError
from billmgr_api.fields import is_whole, split_list
from common.actors import Actor

MAX_PAGE_SIZE = 10_000


@dataclass
class FuncRequest:
    func: str
    params: dict[str, str]
    user: AbstractBaseUser | None
    ip: str | None
    # The `billmgrses5` cookie's session id, for `session.logout` without `auth=`.
    session_cookie: str = ""

    @property
    def actor(self) -> Actor:
        return Actor(user=self.user, ip=self.ip, action=self.func)

    @property
    def sok(self) -> bool:
        return bool(self.params.get("sok", "").strip())

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.params

    def require(self, perm: str) -> None:
        if self.user is None or not self.user.has_perm(perm):
            raise FuncError("access", self.func, f"You have no permission {perm} for {self.func}")

    def _id(self, name: str, raw: str) -> int:
        if not is_whole(raw) or len(raw) > 18:
            raise FuncError("missing", name, f"{name} {raw!r} is not an id")
        return int(raw)

    def ids(self, name: str = "elid") -> list[int]:
        parts = split_list(self.get(name))
        if not parts:
            raise FuncError("empty", name, f"{name} is required")
        return list(dict.fromkeys(self._id(name, p) for p in parts))

    def one_id(self, name: str) -> int | None:
        raw = self.get(name).strip()
        return self._id(name, raw) if raw else None

    def object(self, queryset: models.QuerySet, name: str = "elid") -> models.Model:
        pk = self.one_id(name)
        if pk is None:
            raise FuncError("empty", name, f"{name} is required")
        found = queryset.filter(pk=pk).first()
        if found is None:
            label = queryset.model._meta.verbose_name
            raise FuncError("missing", name, f"There is no {label} with id {pk}")
        return found

    def objects(self, queryset: models.QuerySet, name: str = "elid") -> list[models.Model]:
        """Every id named, or a `missing` error naming the absent ones: all or nothing."""
        wanted = self.ids(name)
        found = {o.pk: o for o in queryset.filter(pk__in=wanted)}
        absent = [str(pk) for pk in wanted if pk not in found]
        if absent:
            label = queryset.model._meta.verbose_name
            raise FuncError("missing", name, f"There is no {label} with id {', '.join(absent)}")
        return [found[pk] for pk in wanted]

    def paging(self) -> tuple[int, int]:
        page = self._positive("p_num", 1)
        size = min(self._positive("p_cnt", settings.BILLMGR_DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        return page, size

    def _positive(self, name: str, default: int) -> int:
        raw = self.get(name).strip()
        if not raw:
            return default
        if not is_whole(raw) or len(raw) > 9 or int(raw) < 1:
            raise FuncError("value", name, f"{name} must be a whole number from 1")
        return int(raw)
