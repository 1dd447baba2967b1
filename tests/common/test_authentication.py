"""REST token authentication: the hand-written lookup answers as DRF's own scheme does, and a
valid token is remembered for a short while."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token, TokenProxy
from rest_framework.test import APIClient

from common import authentication
from common.authentication import TokenAuthentication
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def get_me(token_key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    return client.get("/api/v1/promotions")


@pytest.mark.parametrize(
    ("superuser", "active", "status"),
    [(True, True, 200), (False, True, 403), (True, False, 401)],
    ids=["allowed user", "user without the permission", "inactive user"],
)
def test_a_token_signs_its_user_in(superuser, active, status):
    # given a user with a token
    user = UserFactory(is_superuser=superuser, is_active=active)
    token = Token.objects.create(user=user)
    # when the token is presented
    response = get_me(token.key)
    # then the request is its user's: allowed, forbidden, or refused as inactive
    assert response.status_code == status
    if status == 401:
        assert response.json() == {"detail": "User inactive or deleted."}


def test_an_unknown_token_is_refused():
    # given a token that is not stored (a user has another)
    Token.objects.create(user=UserFactory())
    # when it is presented
    response = get_me("0" * 40)
    # then it is refused as invalid
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_the_request_knows_its_user_and_token(rf):
    # given a user with a token
    user = UserFactory(first_name="Ada")
    token = Token.objects.create(user=user)
    # when the scheme authenticates a request carrying it
    request = rf.get("/", HTTP_AUTHORIZATION=f"Token {token.key}")
    found_user, found_token = TokenAuthentication().authenticate(request)
    # then it answers the stored user, with its fields, and the token
    assert (found_user.pk, found_user.username, found_user.first_name) == (
        user.pk,
        user.username,
        "Ada",
    )
    assert found_user.check_password("secret")
    assert (found_token.key, found_token.user_id, found_token.created) == (
        token.key,
        user.pk,
        token.created,
    )


# Remembered tokens ------------------------------------------------------------------------------


def _token_lookups(ctx) -> int:
    return sum('"authtoken_token"' in q["sql"] for q in ctx.captured_queries)


def _get_me_counting(token_key: str):
    with CaptureQueriesContext(connection) as ctx:
        response = get_me(token_key)
    return response.status_code, _token_lookups(ctx)


@pytest.fixture
def clock(monkeypatch):
    """The memory's monotonic clock, moved by the test instead of slept."""
    now = [1000.0]
    monkeypatch.setattr(authentication, "_clock", lambda: now[0])
    return now


def test_a_valid_token_answers_without_its_lookup_for_a_while(clock, settings):
    # given a token that has just signed its user in
    settings.API_TOKEN_CACHE_SECONDS = 2
    token = Token.objects.create(user=UserFactory(is_superuser=True))
    assert _get_me_counting(token.key) == (200, 1)
    # when it is presented again within the time, and again after it
    clock[0] += 1.9
    within = _get_me_counting(token.key)
    clock[0] += 0.2
    after = _get_me_counting(token.key)
    # then the first answers without the lookup, the second looks the token up again
    assert within == (200, 0)
    assert after == (200, 1)


def _delete_token(token):
    token.delete()


def _deactivate(token):
    token.user.is_active = False
    token.user.save()


def _demote(token):
    token.user.is_superuser = False
    token.user.save()


def _take_permission_from_group(token):
    token.user.groups.get().permissions.clear()


def _leave_group(token):
    token.user.groups.clear()


def _delete_group(token):
    token.user.groups.get().delete()


def _delete_permission(token):
    Permission.objects.get(codename="view_promotion").delete()


def _lose_own_permission(token):
    token.user.user_permissions.clear()


def _delete_user(token):
    token.user.delete()


def _give_token_to_another(token):
    # as the admin's token page saves it (DRF's proxy model)
    proxy = TokenProxy.objects.get(pk=token.pk)
    proxy.user = get_user_model().objects.get(username="bystander")
    proxy.save()


@pytest.mark.parametrize(
    ("holds", "revoke", "status"),
    [
        ("group", _delete_token, 401),
        ("group", _deactivate, 401),
        ("superuser", _demote, 403),
        ("group", _take_permission_from_group, 403),
        ("group", _leave_group, 403),
        ("group", _delete_group, 403),
        ("group", _delete_permission, 403),
        ("own", _lose_own_permission, 403),
        ("own", _delete_user, 401),
        ("own", _give_token_to_another, 403),
    ],
)
def test_this_process_sees_a_revocation_at_once(clock, settings, holds, revoke, status):
    # given a remembered token whose user may list promotions: as a superuser, through a group,
    # or by a permission of their own
    settings.API_TOKEN_CACHE_SECONDS = 60
    user = UserFactory(is_superuser=holds == "superuser")
    view = Permission.objects.get(codename="view_promotion")
    if holds == "group":
        group = Group.objects.create(name="integrations")
        group.permissions.add(view)
        user.groups.add(group)
    if holds == "own":
        user.user_permissions.add(view)
    UserFactory(username="bystander")  # may not list promotions
    token = Token.objects.create(user=user)
    assert get_me(token.key).status_code == 200
    assert _get_me_counting(token.key) == (200, 0)
    # when the token, the user or the user's permissions change through the models
    revoke(Token.objects.select_related("user").get(pk=token.pk))
    # then the next request is refused at once
    assert get_me(token.key).status_code == status


def test_a_lookup_overtaken_by_a_revocation_is_not_remembered(clock, settings, monkeypatch):
    # given a token, and a revocation landing after its lookup read it and before it is stored
    settings.API_TOKEN_CACHE_SECONDS = 60
    token = Token.objects.create(user=UserFactory(is_superuser=True))
    looked_up = TokenAuthentication._looked_up

    def revoked_meanwhile(self, key):
        found = looked_up(self, key)
        Token.objects.filter(key=key).delete()
        return found

    monkeypatch.setattr(TokenAuthentication, "_looked_up", revoked_meanwhile)
    # when the request that read it is answered
    assert get_me(token.key).status_code == 200
    monkeypatch.setattr(TokenAuthentication, "_looked_up", looked_up)
    # then the next request looks the token up again, and is refused
    assert _get_me_counting(token.key) == (401, 1)


def test_a_revocation_elsewhere_is_seen_once_the_memory_is_that_old(clock, settings):
    # given a remembered token
    settings.API_TOKEN_CACHE_SECONDS = 2
    token = Token.objects.create(user=UserFactory(is_superuser=True))
    assert get_me(token.key).status_code == 200
    # when another process deletes it (no signal reaches this one)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [token.key])
    # then this process lets it in until its memory of the token is that old, and no longer
    assert get_me(token.key).status_code == 200
    clock[0] += 2
    assert get_me(token.key).status_code == 401


def test_zero_seconds_looks_every_token_up(clock, settings):
    # given the memory turned off
    settings.API_TOKEN_CACHE_SECONDS = 0
    token = Token.objects.create(user=UserFactory(is_superuser=True))
    # when the token is presented twice, then deleted behind the process's back
    first, second = _get_me_counting(token.key), _get_me_counting(token.key)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [token.key])
    # then each request looked it up, and the deletion is seen at once
    assert (first, second) == ((200, 1), (200, 1))
    assert get_me(token.key).status_code == 401


def test_unknown_keys_are_not_remembered(clock, settings):
    # given the memory on, and callers trying keys that are not stored
    settings.API_TOKEN_CACHE_SECONDS = 60
    Token.objects.create(user=UserFactory(is_superuser=True))
    # when the same unknown key is tried twice
    first, second = _get_me_counting("1" * 40), _get_me_counting("1" * 40)
    # then each try looked it up and was refused
    assert first == second == (401, 1)


def test_expired_tokens_leave_a_full_memory(clock, settings, monkeypatch):
    # given a memory that prunes from three tokens, holding two expired ones and a live one
    settings.API_TOKEN_CACHE_SECONDS = 2
    monkeypatch.setattr(authentication, "_VERIFIED_PRUNE_AT", 3)
    keys = [Token.objects.create(user=UserFactory(is_superuser=True)).key for _ in range(4)]
    for key in keys[:2]:
        assert get_me(key).status_code == 200
    clock[0] += 5
    assert get_me(keys[2]).status_code == 200
    # when a fourth token signs in
    assert get_me(keys[3]).status_code == 200
    # then the expired ones are gone and the live ones kept
    assert set(authentication._verified) == {keys[2], keys[3]}
