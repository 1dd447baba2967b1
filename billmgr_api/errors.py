from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


class FuncError(Exception):
    """A protocol error: rendered as `{"error":{"type":..,"object":..,"msg":..}}` in every format."""

    TYPES = ("auth", "access", "missing", "value", "empty", "exists", "limit", "internal")

    def __init__(self, type_: str, obj: str = "", msg: str = "") -> None:
        assert type_ in self.TYPES, type_
        super().__init__(msg or type_)
        self.type = type_
        self.object = obj
        self.msg = msg or type_


# A ValidationError's code decides the protocol error type; anything else is a bad value.
CODE_TO_TYPE = {
    "unique": "exists",
    "unique_together": "exists",
    "limit": "limit",
    "required": "empty",
    "blank": "empty",
    "null": "empty",
}


def from_validation_error(exc: ValidationError, param_of: dict[str, str]) -> FuncError:
    """The first problem of a model/service ValidationError, named by the door's parameter."""
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.error_dict.items()))
        first = errors[0]
        message = " ".join(first.messages)
        obj = "" if field == NON_FIELD_ERRORS else param_of.get(field, field)
        return FuncError(CODE_TO_TYPE.get(first.code or "", "value"), obj, message)
    first = exc.error_list[0]
    return FuncError(CODE_TO_TYPE.get(first.code or "", "value"), "", " ".join(first.messages))
