"""DRF's JSON parser, reading bodies as every door does (common/bodies.py). Its own module: the
settings name it, and it must load without DRF's views."""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from common.bodies import BadJson, json_loads


class SafeJSONParser(JSONParser):
    """JSON bodies as every door reads them (common/bodies.py): a lone surrogate or nesting deeper
    than any of our bodies is a 400, not a crash further on."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(stream.read().decode(encoding))
        except (BadJson, ValueError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
