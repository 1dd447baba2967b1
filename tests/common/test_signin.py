"""One sign-in policy for every door that checks a password: the admin login, HTTP Basic and the
token endpoint on /api/v1/, `authinfo` and `func=auth` on /billmgr. Failures are counted per
(user, address) and per address; correct credentials are cheap when repeated; a password change
or a deactivation ends the user's sessions and tokens."""

import base64
import datetime
import os
import subprocess
import sys
import threading
import time

import pytest
import time_machine
from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher
from django.core.cache import cache, caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from billmgr_api.models import BillmgrSession
from common.models import Attempt
from common.throttle import throttle_take
from tests.conftest import Door, run_in_threads
from tests.factories import UserFactory

NOW = "2026-06-15 10:00:30+00:00"
pytestmark = pytest.mark.django_db


@pytest.fixture
def tight(settings):
    """Three failures per (user, address), six per address, in a minute."""
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_SECONDS = 3, 60
    settings.THROTTLE_AUTH_ADDRESS_FAILURES = 6
    return settings


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# Each door: try a password from an address; answer "ok", "wrong" or "braked".


def via_admin(client, username, password, ip):
    response = client.post(
        "/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )
    client.logout()
    if response.status_code == 302:
        return "ok"
    text = response.content.decode()
    return "braked" if "Too many failed sign-ins" in text else "wrong"


def via_basic(client, username, password, ip):
    status = (
        APIClient()
        .get("/api/v1/promotions", HTTP_AUTHORIZATION=basic(username, password), REMOTE_ADDR=ip)
        .status_code
    )
    return {200: "ok", 401: "wrong", 403: "wrong", 429: "braked"}[status]


def via_token(client, username, password, ip):
    status = (
        APIClient()
        .post("/api/v1/auth/token", {"username": username, "password": password}, REMOTE_ADDR=ip)
        .status_code
    )
    return {200: "ok", 400: "wrong", 429: "braked"}[status]


def _billmgr(answer):
    if "error" not in answer:
        return "ok"
    return {"auth": "wrong", "limit": "braked"}[answer["error"]["type"]]


def via_authinfo(client, username, password, ip):
    client.defaults["REMOTE_ADDR"] = ip
    return _billmgr(Door(client, authinfo=f"{username}:{password}")("promotion"))


def via_func_auth(client, username, password, ip):
    client.defaults["REMOTE_ADDR"] = ip
    door = Door(client, authinfo=None)
    return _billmgr(door("auth", username=username, password=password))


DOORS = {
    "admin": via_admin,
    "basic": via_basic,
    "token": via_token,
    "authinfo": via_authinfo,
    "func_auth": via_func_auth,
}


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("failing", list(DOORS))
def test_failures_on_one_door_brake_every_door(client, operator, tight, failing):
    # given three wrong passwords through one door
    for _ in range(3):
        assert DOORS[failing](client, "operator", "nope", "10.0.0.1") == "wrong"
    # then the right password is refused by every door from that address
    for name, door in DOORS.items():
        assert door(client, "operator", "secret", "10.0.0.1") == "braked", name
    # and accepted by every door once the window has passed
    with time_machine.travel("2026-06-15 10:01:01+00:00", tick=False):
        for name, door in DOORS.items():
            assert door(client, "operator", "secret", "10.0.0.1") == "ok", name


@time_machine.travel(NOW, tick=False)
def test_fifteen_wrong_passwords_then_the_right_one_is_refused_at_the_admin(client, operator):
    # given the default budget and fifteen wrong passwords on the admin login
    outcomes = [via_admin(client, "operator", f"guess{i}", "10.0.0.2") for i in range(15)]
    # then the guessing was stopped, and so is the right password
    assert "braked" in outcomes
    response = client.post(
        "/admin/login/", {"username": "operator", "password": "secret"}, REMOTE_ADDR="10.0.0.2"
    )
    assert response.status_code == 200
    assert "Too many failed sign-ins; try again in 5 minutes" in response.content.decode()


@time_machine.travel(NOW, tick=False)
def test_the_admin_says_how_many_minutes_are_left(client, operator, tight):
    for _ in range(3):
        via_admin(client, "operator", "nope", "10.0.0.3")
    response = client.post(
        "/admin/login/", {"username": "operator", "password": "secret"}, REMOTE_ADDR="10.0.0.3"
    )
    assert "Too many failed sign-ins; try again in 1 minute." in response.content.decode()


# Who is counted --------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_failures_from_many_addresses_do_not_lock_the_owner_out(client, operator, tight):
    # given ten wrong authinfo attempts for the operator, each from another address
    for n in range(10):
        assert via_authinfo(client, "operator", "nope", f"10.1.0.{n}") == "wrong"
    # then the owner signs in from a clean address, through every door
    for name, door in DOORS.items():
        assert door(client, "operator", "secret", "10.2.0.1") == "ok", name


@time_machine.travel(NOW, tick=False)
def test_failures_count_per_user_and_address_and_per_address(client, operator, tight):
    UserFactory(username="other", password="secret", is_superuser=True)
    # given three failures for the operator from one address
    for _ in range(3):
        via_authinfo(client, "operator", "nope", "10.3.0.1")
    # then the operator is braked there, another user from there is not, nor the operator elsewhere
    assert via_authinfo(client, "operator", "secret", "10.3.0.1") == "braked"
    assert via_authinfo(client, "other", "secret", "10.3.0.1") == "ok"
    assert via_authinfo(client, "operator", "secret", "10.3.0.2") == "ok"
    # when three more failures for other names come from that address, it is braked for everyone
    for name in ("a", "b", "c"):
        assert via_authinfo(client, name, "nope", "10.3.0.1") == "wrong"
    cache.clear()  # nothing remembered: the sign-ins below meet the brakes
    assert via_authinfo(client, "other", "secret", "10.3.0.1") == "braked"
    assert via_basic(client, "other", "secret", "10.3.0.1") == "braked"


@time_machine.travel(NOW, tick=False)
def test_rotating_addresses_inside_one_ipv6_64_count_as_one_address(client, operator, tight):
    # given wrong passwords for the operator, each from another address of one IPv6 /64
    outcomes = [
        via_authinfo(client, "operator", "nope", f"2001:db8:1:2::{n:x}") for n in range(1, 9)
    ]
    # then the (user, address) budget of 3 held for the whole /64
    assert outcomes == ["wrong"] * 3 + ["braked"] * 5
    # and the owner is braked from any address of that /64, but not from the next /64
    assert via_basic(client, "operator", "secret", "2001:db8:1:2:ffff::1") == "braked"
    assert via_basic(client, "operator", "secret", "2001:db8:1:3::1") == "ok"


@pytest.fixture
def user_cap(tight):
    """At most 8 failures per user name in a window from networks the user never signed in from."""
    tight.THROTTLE_AUTH_USER_FAILURES = 8
    return tight


@time_machine.travel(NOW, tick=False)
def test_guesses_from_many_networks_meet_a_per_user_cap_that_spares_the_owners_networks(
    client, operator, user_cap
):
    UserFactory(username="other", password="secret", is_superuser=True)
    # given the owner signed in lately from their office network
    assert via_basic(client, "operator", "secret", "2001:db8:aa:1::5") == "ok"
    # when wrong passwords come from twelve other networks, one each (under every address budget)
    outcomes = [
        via_authinfo(client, "operator", "nope", f"2001:db8:{n:x}::1") for n in range(1, 13)
    ]
    # then the user name took 8 guesses in all, not 12
    assert outcomes == ["wrong"] * 8 + ["braked"] * 4
    cache.clear()  # nothing remembered: each sign-in below meets the brakes
    # and a new network is braked for that user name, even with the right password
    assert via_authinfo(client, "operator", "secret", "2001:db8:bb:1::1") == "braked"
    # while the owner signs in from their own network (another address of it) through every door
    for name, door in DOORS.items():
        assert door(client, "operator", "secret", "2001:db8:aa:1::77") == "ok", name
    # and another user from a new network is not concerned
    assert via_authinfo(client, "other", "secret", "2001:db8:cc:1::1") == "ok"


@pytest.mark.parametrize(("days", "spared"), [(29, True), (31, False)])
def test_a_network_is_the_owners_for_a_while_after_a_sign_in(
    client, operator, user_cap, days, spared
):
    user_cap.SIGNIN_KNOWN_DAYS = 30
    start = datetime.datetime(2026, 6, 1, 10, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False) as clock:
        # given the owner signed in from a network on June 1st
        assert via_authinfo(client, "operator", "secret", "10.30.0.1") == "ok"
        clock.move_to(start + datetime.timedelta(days=days))
        cache.clear()
        # when, days later, a distributed guessing spends the per-user cap
        for n in range(8):
            assert via_authinfo(client, "operator", "nope", f"10.31.0.{n}") == "wrong"
        # then the owner's network is spared for 30 days after that sign-in, not longer
        outcome = via_authinfo(client, "operator", "secret", "10.30.0.1")
    assert outcome == ("ok" if spared else "braked")


@time_machine.travel(NOW, tick=False)
def test_wrong_digipay_tokens_count_against_the_address(client, operator, tight):
    for _ in range(6):
        APIClient().get(
            "/digipay/v3/reward_promotion/referral_program",
            HTTP_AUTHORIZATION="Token wrong",
            HTTP_COMPANYID="x",
            REMOTE_ADDR="10.4.0.1",
        )
    assert via_authinfo(client, "operator", "secret", "10.4.0.1") == "braked"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_sign_ins_from_many_addresses_get_exactly_their_budgets(settings):
    # given a budget of 3 per (user, address) and 5 per address
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_SECONDS = 3, 3600
    settings.THROTTLE_AUTH_ADDRESS_FAILURES = 5
    UserFactory(username="victim", password="right", is_superuser=True)

    def attempt(n):
        client = APIClient()
        return via_basic(client, "victim", "wrong", "10.9.9.9" if n % 2 else "10.8.8.8")

    # when 24 wrong passwords arrive at once from two addresses
    outcomes = run_in_threads(attempt, list(range(24)))
    # then each address let exactly 3 through (its (user, address) budget), and refused the rest
    assert outcomes.count("wrong") == 6 and outcomes.count("braked") == 18
    # and the owner from a third address is not locked out
    assert via_basic(APIClient(), "victim", "right", "10.7.7.7") == "ok"


# Cheap repeated credentials ------------------------------------------------------------------------


@pytest.fixture
def hashes(monkeypatch):
    """How many full password hashes were computed (MD5 in tests: `encode` is the hash)."""
    counted = {"n": 0}
    encode = MD5PasswordHasher.encode

    def counting(self, password, salt):
        counted["n"] += 1
        return encode(self, password, salt)

    monkeypatch.setattr(MD5PasswordHasher, "encode", counting)
    return counted


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("door", ["authinfo", "basic"])
def test_repeated_correct_credentials_skip_the_hash_and_wrong_ones_pay_it(
    client, operator, hashes, door, tight
):
    call = DOORS[door]
    # given one verified call
    assert call(client, "operator", "secret", "10.5.0.1") == "ok"
    assert hashes["n"] == 1
    # when the same credentials come again, no hash is computed
    for _ in range(5):
        assert call(client, "operator", "secret", "10.5.0.1") == "ok"
    assert hashes["n"] == 1
    # while a wrong password still costs a full hash each time and counts against the brake
    for _ in range(3):
        assert call(client, "operator", "nope", "10.5.0.1") == "wrong"
    assert hashes["n"] == 4
    assert call(client, "operator", "nope", "10.5.0.1") == "braked"


def test_remembered_credentials_touch_no_brake_row(client, operator):
    # given credentials verified once
    assert via_authinfo(client, "operator", "secret", "10.5.1.1") == "ok"
    # when they come again, the brake's table is not read or written
    with CaptureQueriesContext(connection) as queries:
        assert via_authinfo(client, "operator", "secret", "10.5.1.1") == "ok"
    touching = [q["sql"] for q in queries if Attempt._meta.db_table in q["sql"]]
    assert touching == []


@time_machine.travel(NOW, tick=False)
def test_remembered_credentials_are_let_in_while_the_address_is_braked(client, operator, tight):
    # given the right password verified once, then the (user, address) budget spent by typos
    assert via_basic(client, "operator", "secret", "10.5.2.1") == "ok"
    for _ in range(3):
        assert via_basic(client, "operator", "typo", "10.5.2.1") == "wrong"
    assert via_basic(client, "operator", "typo", "10.5.2.1") == "braked"
    # then the remembered right password still signs in (only it can match the digest)
    assert via_basic(client, "operator", "secret", "10.5.2.1") == "ok"


@pytest.fixture
def slow_cache(monkeypatch):
    """A cache that answers in 0.3 s (a remote cache under load): parallel calls overlap."""
    backend = type(caches["default"])
    get = backend.get

    def slow_get(self, *args, **kwargs):
        time.sleep(0.3)
        return get(self, *args, **kwargs)

    monkeypatch.setattr(backend, "get", slow_get)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_correct_sign_ins_with_remembered_credentials_are_all_let_in(settings, request):
    # given a budget of 3 per (user, address) and credentials verified once
    settings.THROTTLE_AUTH_FAILURES, settings.THROTTLE_AUTH_SECONDS = 3, 3600
    UserFactory(username="integration", password="right", is_superuser=True)
    assert via_basic(None, "integration", "right", "10.9.1.1") == "ok"
    request.getfixturevalue("slow_cache")
    # when an integration makes 8 calls at once from one address with those credentials
    outcomes = run_in_threads(
        lambda _: via_basic(None, "integration", "right", "10.9.1.1"), list(range(8))
    )
    # then every call is let in: a remembered credential holds no unit of the budget
    assert outcomes == ["ok"] * 8
    assert Attempt.objects.count() == 0


@time_machine.travel(NOW, tick=False)
def test_a_password_change_drops_the_cached_credentials(client, operator, hashes):
    assert via_authinfo(client, "operator", "secret", "10.6.0.1") == "ok"
    # when the password changes
    operator.set_password("changed")
    operator.save()
    before = hashes["n"]
    # then the old password is refused (a full hash again) and the new one is verified afresh
    assert via_authinfo(client, "operator", "secret", "10.6.0.1") == "wrong"
    assert via_authinfo(client, "operator", "changed", "10.6.0.1") == "ok"
    assert hashes["n"] == before + 2
    assert via_authinfo(client, "operator", "changed", "10.6.0.1") == "ok"
    assert hashes["n"] == before + 2


def test_a_deactivated_user_is_refused_even_with_cached_credentials(client, operator):
    assert via_authinfo(client, "operator", "secret", "10.6.0.2") == "ok"
    operator.is_active = False
    operator.save()
    assert via_authinfo(client, "operator", "secret", "10.6.0.2") == "wrong"


# Sessions and tokens end -------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, operator):
    """A func-door session and an API token of the operator, both working."""
    session = Door(client, authinfo=None)("auth", username="operator", password="secret")["auth"]
    token = (
        APIClient()
        .post("/api/v1/auth/token", {"username": "operator", "password": "secret"})
        .json()["token"]
    )
    assert "elem" in Door(client, authinfo=None)("promotion", auth=session)
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/promotions").status_code == 200
    return session, api


@pytest.mark.parametrize("change", ["password", "deactivation"])
def test_a_password_change_or_deactivation_ends_sessions_and_tokens(
    client, operator, signed_in, change
):
    session, api = signed_in
    # when the operator's password changes (or the operator is deactivated)
    if change == "password":
        operator.set_password("new-secret")
    else:
        operator.is_active = False
    operator.save()
    # then the session and the token stop working and are gone
    answer = Door(client, authinfo=None)("promotion", auth=session)
    assert answer["error"]["type"] == "auth"
    assert api.get("/api/v1/promotions").status_code == 401
    assert not BillmgrSession.objects.filter(user=operator).exists()
    assert not Token.objects.filter(user=operator).exists()


class QuickPBKDF2(PBKDF2PasswordHasher):
    """The production hasher with few rounds: only its being preferred matters here."""

    iterations = 1000


@pytest.mark.parametrize("door", list(DOORS))
def test_a_hash_upgrade_at_sign_in_keeps_sessions_and_tokens(
    client, operator, signed_in, settings, door
):
    session, api = signed_in
    # given the operator's password stored under an older hasher (MD5) while PBKDF2 is preferred
    settings.PASSWORD_HASHERS = [
        "tests.common.test_signin.QuickPBKDF2",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    cache.clear()  # no remembered credentials: this sign-in checks the stored hash
    # when the operator signs in through a door, the stored hash is upgraded
    assert DOORS[door](client, "operator", "secret", "10.6.1.1") == "ok"
    operator.refresh_from_db()
    assert operator.password.startswith("pbkdf2_sha256$1000$")
    # then it was no password change: the session and the token still work
    assert "elem" in Door(client, authinfo=None)("promotion", auth=session)
    assert api.get("/api/v1/promotions").status_code == 200
    # and the password still signs in under the new hash
    assert DOORS[door](client, "operator", "secret", "10.6.1.1") == "ok"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_password_changed_while_the_old_one_is_rehashed_stays_changed(settings, monkeypatch):
    # given a password stored under MD5 while PBKDF2 is preferred
    ann = UserFactory(username="ann", password="old", is_superuser=True)
    settings.PASSWORD_HASHERS = [
        "tests.common.test_signin.QuickPBKDF2",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    # and a sign-in with it that waits, once it has checked the old hash, for a change elsewhere
    checked, changed = threading.Event(), threading.Event()
    verify = MD5PasswordHasher.verify

    def verify_then_wait(self, password, encoded):
        result = verify(self, password, encoded)
        checked.set()
        changed.wait(10)
        return result

    monkeypatch.setattr(MD5PasswordHasher, "verify", verify_then_wait)

    def sign_in():
        return via_basic(None, "ann", "old", "10.9.2.1")

    def change_password():
        checked.wait(10)
        user = type(ann).objects.get(pk=ann.pk)
        user.set_password("new")
        user.save()
        changed.set()
        return "changed"

    # when the password is changed on another connection while that sign-in is rehashing
    outcomes = run_in_threads(lambda step: step(), [sign_in, change_password])
    # then the change stands (the rehash of the old password did not overwrite it)
    ann.refresh_from_db()
    assert ann.check_password("new") and not ann.check_password("old")
    # and the sign-in with the old password was refused
    assert outcomes == ["wrong", "changed"]


def test_saving_other_fields_keeps_sessions_and_tokens(client, operator, signed_in):
    session, api = signed_in
    operator.first_name = "Ann"
    operator.save()
    assert "elem" in Door(client, authinfo=None)("promotion", auth=session)
    assert api.get("/api/v1/promotions").status_code == 200


def test_a_session_ends_after_its_absolute_lifetime_however_busy(
    anonymous_door, operator, settings
):
    settings.SESSION_MAX_SECONDS = 8 * 3600
    with time_machine.travel("2026-11-23 08:00:00Z", tick=False) as clock:
        session = anonymous_door("auth", username="operator", password="secret")["auth"]
        # used every half hour for eight hours
        for step in range(1, 16):
            clock.move_to(
                datetime.datetime(2026, 11, 23, 8, tzinfo=datetime.UTC)
                + step * datetime.timedelta(minutes=30)
            )
            assert "elem" in anonymous_door("promotion", auth=session)
        clock.move_to("2026-11-23 16:00:01Z")
        expired = anonymous_door("promotion", auth=session)
    assert expired["error"]["type"] == "auth" and "expired" in expired["error"]["msg"]


def test_an_admin_session_ends_after_its_absolute_lifetime_however_busy(client, operator, settings):
    settings.SESSION_MAX_SECONDS = settings.SESSION_COOKIE_AGE = 8 * 3600
    signed_in_at = datetime.datetime(2026, 11, 23, 8, tzinfo=datetime.UTC)
    with time_machine.travel(signed_in_at, tick=False) as clock:
        # given an operator signed in to the admin at 08:00
        response = client.post("/admin/login/", {"username": "operator", "password": "secret"})
        assert response.status_code == 302
        # when the admin is used every half hour for eight hours, it keeps answering
        for step in range(1, 16):
            clock.move_to(signed_in_at + step * datetime.timedelta(minutes=30))
            assert client.get("/admin/").status_code == 200
        # then one second past the lifetime, the next page asks to sign in again
        clock.move_to(signed_in_at + datetime.timedelta(hours=8, seconds=1))
        expired = client.get("/admin/")
    assert expired.status_code == 302 and expired["Location"].startswith("/admin/login/")


def test_one_setting_names_the_absolute_lifetime_of_every_session():
    # given SESSION_MAX_SECONDS in the environment
    env = {**os.environ, "SESSION_MAX_SECONDS": "7200"}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_MAX_SECONDS, s.SESSION_COOKIE_AGE)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    # then the setting of that name drives func-door sessions and admin sessions alike
    assert shown.stdout.split() == ["7200", "7200"], shown.stderr


# Brake rows do not pile up -----------------------------------------------------------------------


def test_refused_sign_ins_with_new_names_leave_only_the_current_windows_rows(client, settings):
    settings.THROTTLE_AUTH_SECONDS = 60
    settings.THROTTLE_PROMOCODE_SECONDS = settings.THROTTLE_CLICK_SECONDS = 60
    start = datetime.datetime(2026, 6, 15, 10, 0, tzinfo=datetime.UTC)
    # given a refused sign-in under a new name every 10 seconds for an hour, from many addresses
    with time_machine.travel(start, tick=False) as clock:
        for n in range(360):
            clock.move_to(start + datetime.timedelta(seconds=10 * n))
            via_authinfo(client, f"ghost{n}", "nope", f"10.{n // 250}.{n % 250}.1")
    # then only rows of the current and the previous window are kept (each attempt writes 2)
    assert Attempt.objects.count() <= 2 * 6 * 2


def test_a_successful_sign_in_leaves_no_row(client, operator):
    for _ in range(3):
        assert via_authinfo(client, "operator", "secret", "10.0.9.1") == "ok"
    assert Attempt.objects.count() == 0


def test_taking_and_giving_back_keeps_the_table_empty(settings):
    at = datetime.datetime(2026, 6, 15, 10, 0, tzinfo=datetime.UTC)
    throttle_take(scope="auth", keys=["ip:1"], at=at)
    from common.throttle import throttle_give_back

    throttle_give_back(scope="auth", keys=["ip:1"], at=at)
    assert Attempt.objects.count() == 0
