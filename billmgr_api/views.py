"""The single `/billmgr` endpoint: parse, authenticate, dispatch through the function table, render."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from billmgr_api.auth import SESSION_COOKIE, identify, session_id_of
from billmgr_api.errors import FuncError, from_validation_error
from billmgr_api.formats import DEFAULT_FORMAT, FORMATS, format_for_error, render
from billmgr_api.registry import FUNCS
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult
from common.bodies import BadJson, json_loads
from common.net import client_ip

logger = logging.getLogger(__name__)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, dict):
        raise FuncError("value", "", "Parameter values must be strings, numbers or lists")
    return str(value)


def collect_params(request: HttpRequest) -> dict[str, str]:
    """GET query, POST form or a JSON object body; later sources win."""
    params = {k: request.GET.get(k, "") for k in request.GET}
    if request.method != "POST":
        return params
    try:
        if request.content_type == "application/json":
            try:
                body = json_loads(request.body or b"{}")
            except BadJson as exc:
                raise FuncError("value", "body", str(exc)) from None
            except ValueError:
                raise FuncError("value", "body", "The body is not valid JSON") from None
            if not isinstance(body, dict):
                raise FuncError("value", "body", "The JSON body must be an object")
            params.update({str(k): _scalar(v) for k, v in body.items()})
        else:
            params.update({k: request.POST.get(k, "") for k in request.POST})
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise FuncError("limit", "body", f"The body is larger than {limit} bytes") from None
    except TooManyFieldsSent:
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        raise FuncError("limit", "body", f"The body has more than {limit} fields") from None
    except MultiPartParserError:
        raise FuncError("value", "body", "The form body cannot be read") from None
    return params


def refuse_nul(params: dict[str, str]) -> None:
    """Checked once the answer's format is known, so the error comes in that format."""
    for key, value in params.items():
        if "\x00" in value or "\x00" in key:
            raise FuncError("value", key, "NUL characters are not allowed")


def _with_session_cookie(request: HttpRequest, result: FuncResult, response: HttpResponse):
    """`func=auth` sets the session cookie; `session.logout` clears it."""
    if result.session_cookie is None:
        return response
    if result.session_cookie:
        response.set_cookie(
            SESSION_COOKIE,
            result.session_cookie,
            max_age=settings.SESSION_MAX_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    elif SESSION_COOKIE in request.COOKIES:
        response.delete_cookie(SESSION_COOKIE, samesite="Strict")
    return response


@csrf_exempt
def billmgr_view(request: HttpRequest) -> HttpResponse:
    out = request.GET.get("out") or DEFAULT_FORMAT
    func_name = ""
    try:
        params = collect_params(request)
        out = params.get("out") or out
        if out not in FORMATS:
            asked, out = out, format_for_error(out)
            raise FuncError("value", "out", f"out is one of {', '.join(FORMATS)}, not {asked!r}")
        refuse_nul(params)
        func_name = params.get("func", "").strip()
        # Read by ops' metrics middleware, which must not parse the body a second time.
        request.billmgr_func = func_name
        spec = FUNCS.get(func_name)
        if spec is None:
            raise FuncError("missing", "func", f"Unknown function {func_name!r}")
        ip = client_ip(request)
        user = None if spec.public else identify(request, params, ip, writes=spec.writes(params))
        req = FuncRequest(
            func=func_name,
            params=params,
            user=user,
            ip=ip,
            session_cookie=session_id_of(request, {})[0],
        )
        if spec.perm:
            req.require(spec.perm)
        result = spec.handler(req)
    except FuncError as exc:
        return render(func=func_name, out=out, result=exc)
    except ValidationError as exc:
        return render(func=func_name, out=out, result=from_validation_error(exc, {}))
    except Exception:
        logger.exception("billmgr function %s failed", func_name)
        error = FuncError("internal", func_name, "Internal error; it has been logged")
        return render(func=func_name, out=out, result=error, status=500)
    return _with_session_cookie(request, result, render(func=func_name, out=out, result=result))
