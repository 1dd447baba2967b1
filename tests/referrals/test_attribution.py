"""Attaching referred clients to partners: by partner code on the first order, or by link."""

import datetime

import pytest

from billing.models import Service
from common.actors import Actor
from referrals import services
from referrals.models import Referral
from tests.factories import (
    ClientFactory,
    ClientGroupFactory,
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
