"""REST token authentication: the hand-written lookup answers as DRF's own scheme does."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

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
