"""Every DigiPay answer is `{"success":1|0,"error":[codes],"data":{...}}`: successes, refusals,
unknown routes and unexpected failures alike, never an HTML page or a stack trace.

| code | HTTP | data.message           | when                                              |
|------|------|------------------------|---------------------------------------------------|
| 1    | 400  | BAD_REQUEST            | a field is missing or wrong (data.errors per field)|
| 2    | 401  | UNAUTHORIZED           | the token or CompanyID is missing, the token wrong or revoked |
| 3    | 403  | FORBIDDEN              | the token belongs to another company              |
| 4    | 404  | NOT_FOUND              | no such program of this company, or no such route |
| 5    | 405  | METHOD_NOT_ALLOWED     | the route has no such method                      |
| 6    | 500  | INTERNAL_SERVER_ERROR  | an unexpected failure (logged with its traceback) |
| 7    | 400  | BAD_REQUEST            | with 1: the title is taken in this company        |
| 8    | 429  | TOO_MANY_REQUESTS      | a throttle refused the call (Retry-After says when) |

The body is read as JSON whatever its Content-Type says, and the answer is JSON whatever Accept
says, so there is no 406 or 415.
"""

import logging
from collections.abc import Iterable

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from digipay_api import mapping

logger = logging.getLogger("digipay_api")

CODES = {
    400: (1, "BAD_REQUEST"),
    401: (2, "UNAUTHORIZED"),
    403: (3, "FORBIDDEN"),
    404: (4, "NOT_FOUND"),
    405: (5, "METHOD_NOT_ALLOWED"),
    429: (8, "TOO_MANY_REQUESTS"),
    500: (6, "INTERNAL_SERVER_ERROR"),
}
TITLE_TAKEN = 7


def ok(data: dict) -> dict:
    return {"success": 1, "error": [], "data": data}


def failure(
    http_status: int, detail: str = "", errors: dict | None = None, extra: Iterable[int] = ()
) -> dict:
    code, message = CODES.get(http_status, CODES[400 if http_status < 500 else 500])
    data: dict = {"message": message}
    if detail:
        data["detail"] = detail
    if errors:
        data["errors"] = errors
    return {"success": 0, "error": [code, *extra], "data": data}


class BadRequest(exceptions.APIException):
    """A 400 whose per-field messages are DigiPay's field names, with extra error codes."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, errors: dict[str, list[str]], codes: Iterable[int] = ()):
        super().__init__("Some fields are wrong; see errors.")
        self.errors = errors
        self.codes = list(codes)


def _messages(detail) -> list[str]:
    """Any DRF error detail as flat strings; list items say which item they are about."""
    if isinstance(detail, dict):
        return [
            f"[{key}] {text}" if isinstance(key, int) else f"{key}: {text}"
            for key, value in detail.items()
            for text in _messages(value)
        ]
    if isinstance(detail, list):
        return [text for item in detail for text in _messages(item)]
    return [str(detail)]


def field_errors(detail) -> dict[str, list[str]]:
    """DRF's validation detail as {field: [messages]}, whatever its nesting."""
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


def exception_handler(exc, context) -> Response:
    """Every exception of a DigiPay view as the envelope; the unexpected ones are 500s."""
    headers = {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc))
    if isinstance(exc, BadRequest):
        body = failure(400, errors=exc.errors, extra=exc.codes)
    elif isinstance(exc, exceptions.ValidationError):
        body = failure(400, errors=field_errors(exc.detail))
    elif isinstance(exc, exceptions.ParseError):
        body = failure(400, errors={"non_field_errors": [str(exc.detail)]})
    elif isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        body = failure(exc.status_code, detail=str(exc.detail))
    else:
        view = context.get("view")
        logger.exception("DigiPay %s failed", type(view).__name__ if view else "view")
        set_rollback()
        return Response(failure(500, detail="Something went wrong on our side."), status=500)
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


@csrf_exempt
def route_not_found(request, *args, **kwargs) -> JsonResponse:
    """Any path under /digipay/ that names no route."""
    return JsonResponse(
        failure(404, detail=f"There is no route {request.path}."),
        status=404,
        json_dumps_params={"separators": (",", ":")},
    )


# What the envelope looks like, for the schema ---------------------------------------------------


class ErrorData(serializers.Serializer):
    message = serializers.CharField(help_text="BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, ...")
    detail = serializers.CharField(required=False, help_text="What went wrong, for a person.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="400 only: the messages of each DigiPay field.",
    )


class DigiPayError(serializers.Serializer):
    success = serializers.ChoiceField(choices=mapping.FAILURE_CHOICES)
    error = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="1 bad request (with 7: title taken), 2 unauthorized, 3 forbidden, 4 not "
        "found, 5 method not allowed, 6 internal server error, 8 too many requests.",
    )
    data = ErrorData()
