"""Several app servers: two gunicorn servers on two ports and one worker share one PostgreSQL.

Every limit holds across servers, a rule changed through one applies at the other's next request,
and a job started on one shows its progress on the other.
"""

import datetime
import http.cookiejar
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.test import Client as DjangoClient
from rest_framework.authtoken.models import Token

from promotions.models import PromoCode, PromoCodeUsage, Redemption
from tests.factories import (
    ClientFactory,
    DiscountFactory,
    PromoCodeFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
    UserFactory,
)
from tests.ops.conftest import free_port, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Server:
    """One app server as a client sees it: plain HTTP with the cookies it was given."""

    def __init__(self, port: int, cookies: dict[str, str]):
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.cookies = cookies

    def call(self, method: str, path: str, *, data=None, headers=None) -> tuple[int, bytes]:
        headers = {**(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(data, dict):
            data = urllib.parse.urlencode(data, doseq=True).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                self.last_url = response.geturl()
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, method: str, path: str, body: dict, token: str, **headers) -> tuple[int, dict]:
        status, raw = self.call(
            method,
            path,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Token {token}",
                **headers,
            },
        )
        return status, json.loads(raw)


@pytest.fixture
def layout(processes):
    """Two gunicorn servers and one worker on the test database. Each server is one process with
    four threads: requests still run in parallel, and every request to a server meets the same
    per-process state (a rule cache warmed by one request is the one the next request reads)."""
    ports = [free_port(), free_port()]
    for n, port in enumerate(ports):
        processes.start(
            f"web{n}",
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4", "--timeout", "120"],
            SECRET_KEY=settings.SECRET_KEY,
        )  # fmt: skip
    processes.worker(SECRET_KEY=settings.SECRET_KEY)
    for port in ports:
        wait_until(lambda port=port: answers(Server(port, {})), seconds=60, every=0.2)
    return ports


def answers(server: Server) -> bool:
    try:
        return server.call("GET", "/healthz")[0] == 200
    except urllib.error.URLError:
        return False


def test_two_servers_and_a_worker_keep_limits_rules_and_progress_shared(
    layout, processes, settings
):
    # given a promotion giving 10%, a code usable 5 times, 16 clients, and an operator
    provider = ProviderFactory()
    promotion = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    tariff = TariffFactory(provider=provider)
    code = PromoCodeFactory(promotion=promotion, code="SHARED", uselimit=5)
    # and a promotion without codes giving 10% on another tariff
    open_sale = PromotionFactory(provider=provider, fromdate=datetime.date(2020, 1, 1), todate=None)
    other_tariff = TariffFactory(provider=provider)
    sale_discount = DiscountFactory(promotion=open_sale, percentage=Decimal("10"), type="pricelist")
    sale_discount.pricelist.set([other_tariff])
    clients = ClientFactory.create_batch(16, provider=provider)
    operator = UserFactory(username="ops", is_superuser=True, is_staff=True)
    # hashed as the servers (production settings) hash, so the func door's sign-in works there
    settings.PASSWORD_HASHERS = [
        *settings.PASSWORD_HASHERS,
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    operator.password = make_password("secret", hasher="pbkdf2_sha256")
    operator.save()
    token = Token.objects.create(user=operator).key
    browser = DjangoClient()
    browser.force_login(operator)
    session = {"sessionid": browser.cookies["sessionid"].value}
    # the API with its token; the admin (and the func door) with the operator's session
    api_one, api_other = (Server(port, {}) for port in layout)
    one, other = (Server(port, session) for port in layout)

    def order(client, *codes, tariff=tariff):
        line = {"tariff": tariff.pk, "period": 1, "price": "100.00", "currency": "usd"}
        return {"client": client.pk, "provider": provider.pk, "codes": list(codes), "lines": [line]}

    # when the 16 clients redeem the code at once, half through each server
    def redeem(n):
        server = (api_one, api_other)[n % 2]
        return server.json(
            "POST", "/api/v1/redemptions", order(clients[n], "SHARED"), token,
            **{"Idempotency-Key": f"shared-{n}"},
        )[0]  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(redeem, range(16)))
    # then exactly 5 were redeemed over both servers, and the counter matches the rows
    assert sorted(answers) == [201] * 5 + [409] * 11, processes.log("web0")
    assert PromoCode.objects.get(pk=code.pk).use_count == 5
    assert PromoCodeUsage.objects.count() == Redemption.objects.count() == 5

    # when the discount is changed through the first server's func door
    def discount_on(server):
        status, body = server.json(
            "POST", "/api/v1/quotes", order(clients[0], tariff=other_tariff), token
        )
        assert status == 200, body
        return body["lines"][0]["discount"]

    # (the quote warms the other server's process: whatever it caches, it has cached now)
    assert discount_on(api_other) == "10.00"
    auth = json.loads(one.call("GET", "/billmgr?func=auth&username=ops&password=secret")[1])
    changed = one.call(
        "GET",
        "/billmgr?"
        + urllib.parse.urlencode(
            {"func": "promotion.discount.edit", "auth": auth["auth"], "sok": "ok",
             "plid": open_sale.pk, "elid": sale_discount.pk, "percentage": "30"}
        ),
    )  # fmt: skip
    assert b'"ok": true' in changed[1] or b'"ok":true' in changed[1], changed
    # then the other server applies it at its next request
    assert discount_on(api_other) == "30.00"

    # when a big generation is started from the admin of the first server
    status, page = one.call("GET", "/admin/promotions/promotion/")
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    one.cookies["csrftoken"] = next(c.value for c in one.jar if c.name == "csrftoken")
    status, _ = one.call(
        "POST",
        "/admin/promotions/promotion/",
        data={"csrfmiddlewaretoken": csrf, "action": "generate_codes",
              "_selected_action": promotion.pk, "apply": "Generate",
              "template": "BIG-??????????", "count": 300_000},
    )  # fmt: skip
    assert status == 200, status  # the job's progress page, after the redirect
    job_id = int(re.search(r"/admin/common/job/(\d+)/progress/", one.last_url).group(1))
    # then the other server's progress page follows it to its end
    readings = []

    def finished():
        reading = json.loads(other.call("GET", f"/admin/common/job/{job_id}/status/")[1])
        readings.append((reading["status"], reading["done"]))
        return reading["finished"]

    wait_until(finished, seconds=180, every=0.05)
    assert readings[-1] == ("done", 300_000), (readings[-5:], processes.log("worker"))
    assert any(s == "running" and 0 < d < 300_000 for s, d in readings), readings
    assert promotion.promocodes.filter(code__startswith="BIG-").count() == 300_000
