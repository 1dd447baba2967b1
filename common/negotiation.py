"""DRF's content negotiation, without parsing an Accept header that accepts anything.

Measured need: choosing the renderer parsed the request's Accept header (absent, or `*/*`, for
most API clients) into media types on every request: 3% of a redemption's CPU in the app server
(bench/http_load.py profiles). Such a request gets the first renderer and its media type, as
DRF's own negotiation answers it; any other is DRF's to answer.
"""

from rest_framework.negotiation import DefaultContentNegotiation

ANYTHING = "*/*"


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            renderers
            and ";" not in renderers[0].media_type  # DRF skips one with parameters for */*
            and not format_suffix
            and request.META.get("HTTP_ACCEPT", ANYTHING) == ANYTHING
            and not request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
