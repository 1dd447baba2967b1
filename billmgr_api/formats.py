"""Renders a FuncResult or FuncError as bjson, json/sjson/xjson or xml; the one place formats live.

JSON is written compact (`{"func":"promotion.edit","ok":true}`): clients in the field test success
by matching `"ok":true` in the text.
"""

import json
import re
from xml.etree import ElementTree

from django.http import HttpResponse

from billmgr_api.errors import FuncError
from billmgr_api.results import FuncResult

FORMATS = ("bjson", "json", "sjson", "xjson", "xml")
DEFAULT_FORMAT = "bjson"
# The formats that answer the `doc` document as JSON; an unknown format naming JSON gets its
# error in this shape, so a client reading `doc` can read it.
DOC_JSON = ("json", "sjson", "xjson")
# Elements that repeat, and are therefore lists in the JSON document.
REPEATED = ("elem", "slist", "val")


def format_for_error(out: str) -> str:
    """The format an error is answered in when `out` names none we know."""
    return "sjson" if "json" in out.lower() and out.lower() != "bjson" else DEFAULT_FORMAT


def is_field_error(error: FuncError) -> bool:
    return error.type in ("value", "empty", "exists", "limit", "missing") and bool(error.object)


def _paging(result: FuncResult) -> dict[str, str]:
    return {
        "p_num": str(result.page),
        "p_cnt": str(result.page_size),
        "p_elems": str(result.total),
    }


# bjson: plain JSON with string values --------------------------------------------------------


def _bjson(func: str, result: FuncResult | FuncError) -> dict:
    if isinstance(result, FuncError):
        return {"error": {"type": result.type, "object": result.object, "msg": result.msg}}
    if result.kind == "ok":
        return {"func": func, "ok": True, **result.values}
    if result.kind == "list":
        return {"elem": result.rows, **_paging(result), **result.values}
    if result.options:
        options = [
            {"name": name, "val": [{"key": key, "label": label} for key, label in values]}
            for name, values in result.options.items()
        ]
        return {**result.values, "slist": options}
    return dict(result.values)


# json/sjson and xml share one document tree: (tag, attributes, text, children) --------------


def _node(tag, text=None, attrs=None, children=None):
    return (tag, attrs or {}, text, children or [])


def _doc(result: FuncResult | FuncError) -> list:
    if isinstance(result, FuncError):
        # `detail` repeats the message: some clients take an answer as an error only when
        # doc.error.detail.$ is set; `param` names the field a field error is about.
        attrs = {"type": result.type, "object": result.object}
        children = [_node("msg", result.msg), _node("detail", result.msg)]
        if is_field_error(result):
            children.append(_node("param", result.object))
        return [_node("error", attrs=attrs, children=children)]
    if result.kind == "ok":
        return [_node("ok")] + [_node(k, v) for k, v in result.values.items()]
    if result.kind == "auth":
        sid, level = result.values["auth"], result.values["level"]
        return [_node("auth", sid, {"id": sid, "level": level})]
    if result.kind == "list":
        elems = [
            _node("elem", children=[_node(k, v) for k, v in row.items()]) for row in result.rows
        ]
        extra = {**_paging(result), **result.values}
        return elems + [_node(k, v) for k, v in extra.items()]
    slists = [
        _node(
            "slist",
            attrs={"name": name},
            children=[_node("val", label, {"key": key}) for key, label in values],
        )
        for name, values in result.options.items()
    ]
    return [_node(k, v) for k, v in result.values.items()] + slists


def _to_json(nodes: list) -> dict:
    out: dict = {}
    for tag, attrs, text, children in nodes:
        value = {f"${k}": v for k, v in attrs.items()}
        if text is not None:
            value["$"] = text
        value.update(_to_json(children))
        if tag == "slist":
            value.setdefault("val", [])  # an empty list is still a list to a client
        if tag in REPEATED:
            out.setdefault(tag, []).append(value)
        else:
            out[tag] = value
    return out


# What XML 1.0 cannot carry (control characters, lone surrogates) becomes U+FFFD.
NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    return NOT_XML.sub("\ufffd", value)


def _to_xml(parent: ElementTree.Element, nodes: list) -> None:
    for tag, attrs, text, children in nodes:
        el = ElementTree.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrs.items()})
        if text is not None:
            el.text = _xml_text(text)
        _to_xml(el, children)


def render(
    *, func: str, out: str, result: FuncResult | FuncError, status: int = 200
) -> HttpResponse:
    if out not in FORMATS:
        out = format_for_error(out)
    if out == "xml":
        root = ElementTree.Element("doc")
        _to_xml(root, _doc(result))
        body = ElementTree.tostring(root, encoding="unicode", xml_declaration=False)
        return HttpResponse(
            '<?xml version="1.0" encoding="UTF-8"?>\n' + body,
            content_type="text/xml; charset=utf-8",
            status=status,
        )
    payload = _bjson(func, result) if out == "bjson" else {"doc": _to_json(_doc(result))}
    return HttpResponse(
        # A lone surrogate from a JSON body cannot be UTF-8: it is replaced, not a 500.
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace"),
        content_type="application/json; charset=utf-8",
        status=status,
    )
