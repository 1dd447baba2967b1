"""Default enrolment of new clients as partners, and link clicks that attach at registration."""

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError

from billing.models import Client
from billing.services import substrate_create
from common.actors import Actor
from referrals import services
from referrals.models import LinkClick, Partnership, Referral
from tests.factories import ClientFactory, ClientGroupFactory, ReferralProgramFactory, UserFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
NOW = "2026-06-15 10:00:00+00:00"


@pytest.fixture
def default_program():
    return ReferralProgramFactory(
        promocode="PAL@ID@",
        url="https://host.example/join",
        assign_by_default=True,
        start_date=datetime.date(2026, 1, 1),
        end_date=datetime.date(2026, 12, 31),
    )


def register(provider, **fields) -> Client:
    return substrate_create(model=Client, actor=ACTOR, name="New", provider=provider, **fields)


@time_machine.travel(NOW, tick=False)
def test_a_new_client_of_the_provider_is_enrolled_with_a_code_and_a_link(default_program):
    # when a client registers with the program's provider
    client = register(default_program.provider)
    # then they are a partner of the default program, with their own code and link
    partnership = Partnership.objects.get(partner=client)
    assert partnership.program == default_program
    assert partnership.code == f"PAL{client.pk}"
    assert partnership.link == f"https://host.example/join?from={client.pk}"
    # and their code attaches the next newcomer to them
    newcomer = ClientFactory(provider=default_program.provider)
    referral = services.referral_attach_by_code(client=newcomer, code=partnership.code, actor=ACTOR)
    assert referral.partner == client


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "change",
    [
        {"assign_by_default": False},
        {"status": "inactive"},
        {"end_date": datetime.date(2026, 6, 14)},
        {"start_date": datetime.date(2026, 6, 16), "end_date": None},
        {"account_group": "other"},
    ],
    ids=["not default", "inactive", "ended", "not started", "outside the group"],
)
def test_no_enrolment_when_the_default_program_does_not_take_the_client(default_program, change):
    for field, value in change.items():
        setattr(default_program, field, ClientGroupFactory() if value == "other" else value)
    default_program.save()
    register(default_program.provider)
    assert not Partnership.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_clients_of_another_provider_are_not_enrolled(default_program):
    register(ReferralProgramFactory().provider)
    assert not Partnership.objects.exists()


def test_enrolment_is_once_per_program(default_program):
    partner = ClientFactory(provider=default_program.provider)
    first = services.partner_enrol(program=default_program, partner=partner, actor=ACTOR)
    again = services.partner_enrol(program=default_program, partner=partner, actor=ACTOR)
    assert first == again and Partnership.objects.count() == 1
    with pytest.raises(ValidationError):
        services.partner_enrol(program=default_program, partner=ClientFactory(), actor=ACTOR)


@time_machine.travel(NOW, tick=False)
def test_a_recorded_click_attaches_the_visitor_when_they_register(default_program):
    # given two partners whose links the visitor followed, the second one last
    first, last = (ClientFactory(provider=default_program.provider) for _ in range(2))
    for partner in (first, last):
        services.link_click_record(program=default_program, partner_id=partner.pk, visitor="v-1")
    # when the visitor registers
    referral = services.client_registered(
        client=ClientFactory(provider=default_program.provider), actor=ACTOR, visitor="v-1"
    )
    # then the last link followed wins, by link, and the clicks are spent
    assert (referral.partner, referral.source) == (last, Referral.Source.LINK)
    assert set(LinkClick.objects.values_list("referral", flat=True)) == {referral.pk}
    # and the same visitor id registering again attaches nobody
    other = ClientFactory(provider=default_program.provider)
    assert services.client_registered(client=other, actor=ACTOR, visitor="v-1") is None


@pytest.mark.parametrize(("days_later", "attached"), [(29, True), (31, False)])
def test_clicks_count_for_thirty_days(default_program, days_later, attached):
    partner = ClientFactory(provider=default_program.provider)
    clicked = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
    services.link_click_record(
        program=default_program, partner_id=partner.pk, visitor="v-2", at=clicked
    )
    newcomer = ClientFactory(provider=default_program.provider)
    later = clicked + datetime.timedelta(days=days_later)
    result = services.client_registered(client=newcomer, actor=ACTOR, visitor="v-2", at=later)
    assert (result is not None) is attached


def test_a_click_for_an_unknown_partner_is_refused(default_program):
    with pytest.raises(ValidationError):
        services.link_click_record(
            program=default_program, partner_id=ClientFactory().pk, visitor="v"
        )
    assert not LinkClick.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_rest_records_a_click_then_attaches_by_visitor(client, default_program):
    partner, newcomer = (ClientFactory(provider=default_program.provider) for _ in range(2))
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    click = client.post(
        "/api/v1/referrals/clicks",
        {"program": default_program.pk, "partner": partner.pk, "visitor": "cookie-7"},
        content_type="application/json",
    )
    assert click.status_code == 201
    assert click.json()["link"] == f"https://host.example/join?from={partner.pk}"
    attach = client.post(
        "/api/v1/referrals/attach",
        {"client": newcomer.pk, "visitor": "cookie-7"},
        content_type="application/json",
    )
    assert attach.status_code == 201 and attach.json()["partner"] == partner.pk
    unknown = client.post(
        "/api/v1/referrals/attach",
        {"client": ClientFactory(provider=default_program.provider).pk, "visitor": "nobody"},
        content_type="application/json",
    )
    assert unknown.status_code == 409 and "no partner link" in unknown.json()["detail"]
    bad = client.post(
        "/api/v1/referrals/clicks",
        {"program": default_program.pk, "partner": ClientFactory().pk, "visitor": "x"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "partner" in bad.json()
