"""The function table: func name -> handler; a new function is one entry, not a new branch."""

from collections.abc import Callable
from dataclasses import dataclass

from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult

Handler = Callable[[FuncRequest], FuncResult]


@dataclass(frozen=True)
class FuncSpec:
    name: str
    handler: Handler
    perm: str | None
    public: bool

    def writes(self, params: dict[str, str]) -> bool:
        """Whether a call may change anything: every call but the reads, which are the functions
        a view permission allows and an `.edit` without `sok` (its form)."""
        if self.name.endswith(".edit"):
            return bool(params.get("sok", "").strip())
        return not (self.perm or "").rpartition(".")[2].startswith("view_")


FUNCS: dict[str, FuncSpec] = {}


def func(name: str, *, perm: str | None = None, public: bool = False):
    """Register a handler; `perm` is checked before it runs (edit handlers check their own)."""

    def register(handler: Handler) -> Handler:
        if name in FUNCS:
            raise RuntimeError(f"{name} is registered twice")
        FUNCS[name] = FuncSpec(name=name, handler=handler, perm=perm, public=public)
        return handler

    return register
