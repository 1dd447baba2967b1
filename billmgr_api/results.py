"""What a function answers, independent of the output format."""

from dataclasses import dataclass, field


@dataclass
class FuncResult:
    """One of: ok (a change succeeded), rows (a list), form (an object's fields), auth (a session).

    `options` are a form's choice lists (slist): field -> [(value, label), ...]. `session_cookie`
    is set by `func=auth` (the id) and `session.logout` ("" to clear it)."""

    kind: str
    rows: list[dict[str, str]] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    page: int = 1
    page_size: int = 0
    total: int = 0
    options: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    session_cookie: str | None = None

    @classmethod
    def ok(cls, **values: object) -> "FuncResult":
        return cls(kind="ok", values={k: str(v) for k, v in values.items() if v is not None})

    @classmethod
    def listing(cls, rows: list[dict[str, str]], *, page: int, page_size: int, total: int):
        return cls(kind="list", rows=rows, page=page, page_size=page_size, total=total)

    @classmethod
    def form(
        cls, values: dict[str, str], options: dict[str, list[tuple[str, str]]] | None = None
    ) -> "FuncResult":
        return cls(kind="form", values=values, options=options or {})

    @classmethod
    def auth(cls, session_id: str, level: str) -> "FuncResult":
        return cls(
            kind="auth", values={"auth": session_id, "level": level}, session_cookie=session_id
        )
