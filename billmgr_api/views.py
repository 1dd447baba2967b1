"""The single `/billmgr` endpoint: parse, authenticate, dispatch through the function table, render."""

import json
import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from billmgr_api.auth import identify
from billmgr_api.errors import FuncError, from_validation_error
from billmgr_api.formats import DEFAULT_FORMAT, FORMATS, render
from billmgr_api.registry import FUNCS
from billmgr_api.request import FuncRequest
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
    if request.method == "POST":
        if request.content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise FuncError("value", "body", "The body is not valid JSON") from None
            if not isinstance(body, dict):
                raise FuncError("value", "body", "The JSON body must be an object")
            params.update({str(k): _scalar(v) for k, v in body.items()})
        else:
            params.update({k: request.POST.get(k, "") for k in request.POST})
    return params


def refuse_nul(params: dict[str, str]) -> None:
    """Checked once the answer's format is known, so the error comes in that format."""
    for key, value in params.items():
        if "\x00" in value or "\x00" in key:
            raise FuncError("value", key, "NUL characters are not allowed")


@csrf_exempt
def billmgr_view(request: HttpRequest) -> HttpResponse:
    out = request.GET.get("out") or request.POST.get("out") or DEFAULT_FORMAT
    out = out if out in FORMATS else DEFAULT_FORMAT
    func_name = ""
    try:
        params = collect_params(request)
        out = params.get("out") or out
        if out not in FORMATS:
            out = DEFAULT_FORMAT
            raise FuncError("value", "out", f"out is one of {', '.join(FORMATS)}")
        refuse_nul(params)
        func_name = params.get("func", "").strip()
        spec = FUNCS.get(func_name)
        if spec is None:
            raise FuncError("missing", "func", f"Unknown function {func_name!r}")
        ip = client_ip(request)
        user = None if spec.public else identify(params, ip)
        req = FuncRequest(func=func_name, params=params, user=user, ip=ip)
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
    return render(func=func_name, out=out, result=result)
