"""Attaching referred clients to partners: by partner code on the first order, or by link."""

import datetime
import threading

import pytest

from billing.models import Service
from common.actors import Actor
from referrals import services
from referrals.models import Referral
from tests.conftest import run_in_threads
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
    ExpenseFactory,
    ReferralProgramFactory,
    ServiceFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
AT = datetime.datetime(2026, 6, 30, 23, 0, tzinfo=datetime.UTC)


@pytest.fixture
def program():
    return ReferralProgramFactory(
        promocode="FRIEND@ID@",
        start_date=datetime.date(2026, 1, 1),
        end_date=datetime.date(2026, 6, 30),
    )


def members(program):
    return ClientFactory(provider=program.provider), ClientFactory(provider=program.provider)


def test_a_partner_code_attaches_the_client_to_that_partner(program):
    # given a partner and a new client
    partner, newcomer = members(program)
    # when the newcomer enters FRIEND<partner id> on the last day of the program (inclusive)
    referral = services.referral_attach_by_code(
        client=newcomer, code=f" friend{partner.pk} ", actor=ACTOR, at=AT
    )
    # then they are the partner's referral through the code
    assert (referral.program, referral.partner, referral.client, referral.source) == (
        program,
        partner,
        newcomer,
        Referral.Source.PROMOCODE,
    )


@pytest.mark.parametrize(
    "digits",
    [
        "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079",
        "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
    ],
    ids=["superscript", "arabic-indic"],
)
def test_a_partner_code_in_other_than_ascii_digits_is_no_partner_code(client, program, digits):
    # given a partner of a running program, their id written in other digits, and a new client
    program.end_date = None
    program.save()
    partner, newcomer = members(program)
    code = f"FRIEND{str(partner.pk).translate(str.maketrans('0123456789', digits))}"
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    # when the newcomer's code is sent through the REST door
    answer = client.post(
        "/api/v1/referrals/attach",
        {"client": newcomer.pk, "code": code},
        content_type="application/json",
    )
    # then it is refused as no partner code (not a 500, not a second spelling of the partner's)
    assert answer.status_code == 409, answer.content
    assert answer.json() == {"detail": f"{code} is no partner code of a referral program"}
    assert not Referral.objects.exists()


def test_a_link_attaches_at_registration_even_with_services(program):
    partner, newcomer = members(program)
    ServiceFactory(client=newcomer, status=Service.Status.ACTIVE)
    referral = services.referral_attach(
        client=newcomer,
        partner_id=partner.pk,
        program=program,
        source=Referral.Source.LINK,
        actor=ACTOR,
        at=AT,
    )
    assert referral.source == "link"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("self", "cannot refer themselves"),
        ("twice", "referred already"),
        ("not_first_order", "first order"),
        ("outside_group", "outside the program's group"),
        ("after_end", "not running"),
        ("before_start", "not running"),
        ("unknown_partner", "no partner"),
        ("not_a_code", "no partner code"),
        ("max_referrals", "most referrals"),
    ],
)
def test_attachments_are_refused_with_a_reason_and_nothing_saved(program, case, reason):
    # given a partner, a newcomer, and the case's twist
    partner, newcomer = members(program)
    code, at = f"FRIEND{partner.pk}", AT
    if case == "self":
        code = f"FRIEND{newcomer.pk}"
    elif case == "twice":
        services.referral_attach_by_code(client=newcomer, code=code, actor=ACTOR, at=AT)
        code = f"FRIEND{ClientFactory(provider=program.provider).pk}"
    elif case == "not_first_order":
        ServiceFactory(client=newcomer)
    elif case == "outside_group":
        program.account_group = ClientGroupFactory()
        program.save()
    elif case == "after_end":
        at = AT + datetime.timedelta(days=1)
    elif case == "before_start":
        at = datetime.datetime(2025, 12, 31, 12, tzinfo=datetime.UTC)
    elif case == "unknown_partner":
        code = "FRIEND999999"
    elif case == "not_a_code":
        code = f"FRIEND{partner.pk}X"
    elif case == "max_referrals":
        program.max_referrals = 1
        program.save()
        other = ClientFactory(provider=program.provider)
        services.referral_attach_by_code(client=other, code=code, actor=ACTOR, at=AT)
    before = Referral.objects.count()
    # when the newcomer enters the code
    with pytest.raises(services.AttachRefused) as refused:
        services.referral_attach_by_code(client=newcomer, code=code, actor=ACTOR, at=at)
    # then it is refused with the reason and no referral is added
    assert reason in refused.value.reason
    assert Referral.objects.count() == before


def test_rest_attach_answers_201_then_409(client, program):
    partner, newcomer = members(program)
    program.end_date = None
    program.save()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    body = {"client": newcomer.pk, "code": f"FRIEND{partner.pk}"}
    first = client.post("/api/v1/referrals/attach", body, content_type="application/json")
    again = client.post("/api/v1/referrals/attach", body, content_type="application/json")
    assert first.status_code == 201 and first.json()["partner"] == partner.pk
    assert again.status_code == 409 and "referred already" in again.json()["detail"]
    link = client.post(
        "/api/v1/referrals/attach",
        {
            "client": ClientFactory(provider=program.provider).pk,
            "partner": partner.pk,
            "program": program.pk,
        },
        content_type="application/json",
    )
    assert link.status_code == 201 and link.json()["source"] == "link"
    assert (
        client.post(
            "/api/v1/referrals/attach", {"client": newcomer.pk}, content_type="application/json"
        ).status_code
        == 400
    )


def test_a_partner_code_does_not_bind_a_client_who_has_been_charged(program):
    # given a client with a charge but no service
    partner, newcomer = members(program)
    ExpenseFactory(client=newcomer)
    # then their partner code is refused: it works on the first order only
    with pytest.raises(services.AttachRefused, match="first order"):
        services.referral_attach_by_code(
            client=newcomer, code=f"FRIEND{partner.pk}", actor=ACTOR, at=AT
        )


def test_how_a_referral_came_is_kept(program):
    # given a partner, a client who enters the code and one who follows the link
    partner, by_code = members(program)
    program.url = "https://example.com/join"
    program.save()
    by_code_referral = services.referral_attach_by_code(
        client=by_code, code=f" friend{partner.pk}", actor=ACTOR, at=AT
    )
    by_link = ClientFactory(provider=program.provider)
    services.link_click_record(program=program, partner_id=partner.pk, visitor="v-9", at=AT)
    by_link_referral = services.referral_attach_by_click(
        client=by_link, visitor="v-9", actor=ACTOR, at=AT
    )
    # then the code entered and the link followed are kept
    assert by_code_referral.via == f"FRIEND{partner.pk}"
    assert by_link_referral.via == f"https://example.com/join?from={partner.pk}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_max_referrals_holds_under_parallel_attachments():
    # given a program that allows one referral per partner, and eight newcomers
    program = ReferralProgramFactory(promocode="FRIEND@ID@", max_referrals=1)
    partner = ClientFactory(provider=program.provider)
    newcomers = ClientFactory.create_batch(8, provider=program.provider)
    barrier = threading.Barrier(8)

    def attach(client):
        barrier.wait()
        try:
            services.referral_attach_by_code(client=client, code=f"FRIEND{partner.pk}", actor=ACTOR)
            return "attached"
        except services.AttachRefused as exc:
            assert "most referrals" in exc.reason
            return "refused"

    # when they all enter the partner's code at the same moment, on their own connections
    results = run_in_threads(attach, newcomers)
    # then exactly one is attached
    assert sorted(results) == ["attached"] + ["refused"] * 7
    assert Referral.objects.filter(program=program, partner=partner).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_crossed_parallel_attachments_do_not_deadlock():
    # given two clients, each attaching to the other as partner at once (rows locked in id order)
    program = ReferralProgramFactory(max_referrals=5)
    first, second = ClientFactory.create_batch(2, provider=program.provider)
    barrier = threading.Barrier(2)

    def attach(pair):
        client, partner = pair
        barrier.wait()
        try:
            services.referral_attach(
                client=client, partner_id=partner.pk, program=program, source="link", actor=ACTOR
            )
            return "attached"
        except services.AttachRefused:
            return "refused"

    results = run_in_threads(attach, [(first, second), (second, first)])
    assert sorted(results) in (["attached", "attached"], ["attached", "refused"])
