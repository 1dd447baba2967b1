"""The content negotiation answers every request as DRF's own does."""

import pytest
from django.http import Http404
from django.test import RequestFactory
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, MultiPartRenderer
from rest_framework.request import Request

from common.negotiation import ContentNegotiation

media_types = st.sampled_from(
    [
        "*/*",
        "application/json",
        "application/json; indent=4",
        "text/html",
        "text/*",
        "application/*",
        "application/xml",
        "*/*; q=0.5",
        "",
        "text/html, */*",
    ]
)


def _answer(negotiation, accept, query, suffix, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get("/api/v1/promotions" + query, **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable:
        return "406"
    except Http404:  # a format no renderer has
        return "404"
    return type(renderer), media_type


@settings(max_examples=300, deadline=None)
@given(
    accept=st.none() | media_types | st.lists(media_types, max_size=3).map(", ".join),
    query=st.sampled_from(["", "?format=json", "?format=api", "?format=xml", "?limit=5"]),
    suffix=st.sampled_from([None, "json", "api"]),
    renderers=st.sampled_from(
        [
            [JSONRenderer()],
            [JSONRenderer(), BrowsableAPIRenderer()],
            [BrowsableAPIRenderer()],
            [MultiPartRenderer(), JSONRenderer()],  # a media type with parameters first
            [],
        ]
    ),
)
@pytest.mark.django_db
def test_the_answer_is_drfs_own(accept, query, suffix, renderers):
    # given any Accept header (or none), format override and renderers
    # when both negotiations choose
    # then they choose the same renderer and media type, or both refuse
    assert _answer(ContentNegotiation(), accept, query, suffix, renderers) == _answer(
        DefaultContentNegotiation(), accept, query, suffix, renderers
    )
