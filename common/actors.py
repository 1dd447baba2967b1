from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser


@dataclass(frozen=True)
class Actor:
    """Who acted, from where and through which door/function: every door records history alike."""

    user: AbstractBaseUser | None
    ip: str | None
    action: str

    @classmethod
    def system(cls, action: str) -> "Actor":
        return cls(user=None, ip=None, action=action)

    @property
    def username(self) -> str:
        return self.user.get_username() if self.user is not None else "system"
