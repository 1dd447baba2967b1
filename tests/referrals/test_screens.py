"""Fraud screens on attachment: the partner's own e-mail under another spelling, a partner in the
restricted group, too many link attachments from one address in a day; each refusal recorded for
the operator, on every way of attaching (code, link, click-based registration)."""

import datetime
import re

import pytest
import time_machine

from common.actors import Actor
from common.models import History
from referrals import services
from referrals.models import AttachmentRefusal, Referral
from referrals.screens import normalised_email
from tests.conftest import Door, run_in_threads
from tests.factories import ClientFactory, ClientGroupFactory, ReferralProgramFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
AT = datetime.datetime(2026, 3, 10, 12, tzinfo=datetime.UTC)


@pytest.fixture
def program():
    return ReferralProgramFactory(
        promocode="FRIEND@ID@",
        url="https://shop.example/join",
        start_date=datetime.date(2026, 1, 1),
        link_attachments_per_address=2,
    )


def client_of(program, **fields):
    return ClientFactory(provider=program.provider, **fields)


def attach(program, partner, client, *, source="link", address=None, at=AT):
    return services.referral_attach(
        client=client,
        partner_id=partner.pk,
        program=program,
        source=source,
        actor=ACTOR,
        at=at,
        address=address,
    )


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("Jane.Doe+promo@GoogleMail.com", "janedoe@gmail.com", True),
        ("j.a.n.e@gmail.com", "jane+x+y@gmail.com", True),
        ("jane+tag@outlook.com", "JANE@outlook.com", True),
        ("jane@hotmail.com", "jane@outlook.com", True),
        ("jane-shop@yahoo.com", "jane@yahoo.com", True),
        ("j.ane@outlook.com", "jane@outlook.com", False),  # dots count there
        ("jane+tag@example.com", "jane@example.com", False),  # not a known provider
        ("Jane@Example.com", "jane@example.com", True),  # case, anywhere
        ("", "", True),
    ],
)
def test_emails_are_compared_as_the_mailbox_they_reach(one, other, same):
    assert (normalised_email(one) == normalised_email(other)) is same


def test_the_partners_own_email_under_another_spelling_is_refused_and_recorded(program):
    partner = client_of(program, email="jane.doe@gmail.com")
    twin = client_of(program, email="JaneDoe+bonus@googlemail.com")
    with pytest.raises(services.AttachRefused, match="e-mail is the partner's own") as refused:
        services.referral_attach_by_code(
            client=twin, code=f"FRIEND{partner.pk}", actor=ACTOR, at=AT
        )
    assert refused.value.screen == "same_email"
    [record] = AttachmentRefusal.objects.all()
    assert (record.partner, record.client, record.screen, record.source) == (
        partner,
        twin,
        "same_email",
        "promocode",
    )
    assert History.objects.filter(object_id=program.pk, desc__startswith="Refused to attach")
    # and someone else's address is fine
    stranger = client_of(program, email="john@gmail.com")
    assert attach(program, partner, stranger, source="promocode").partner == partner


def test_a_partner_in_the_restricted_group_brings_nobody(program):
    restricted = ClientGroupFactory()
    program.account_group_restrict = restricted
    program.save()
    partner, newcomer = client_of(program), client_of(program)
    partner.groups.add(restricted)
    with pytest.raises(services.AttachRefused, match="restricted group"):
        attach(program, partner, newcomer)
    assert AttachmentRefusal.objects.get().screen == "restricted_partner"
    assert not Referral.objects.exists()


def test_one_address_attaches_at_most_the_programs_number_a_day(program):
    partner = client_of(program)
    # given two link attachments from one address (the program allows two)
    for _ in range(2):
        attach(program, partner, client_of(program), address="203.0.113.7")
    # then a third the same day is refused, from another address it is not
    with pytest.raises(
        services.AttachRefused, match=re.escape("attached 2 clients from 203.0.113.7")
    ):
        attach(program, partner, client_of(program), address="203.0.113.7")
    attach(program, partner, client_of(program), address="198.51.100.1")
    # and the next day the address may attach again; codes and hand attachments are not counted
    attach(
        program,
        partner,
        client_of(program),
        address="203.0.113.7",
        at=AT + datetime.timedelta(days=1, seconds=1),
    )
    attach(program, partner, client_of(program), source="manual", address="203.0.113.7")
    refusal = AttachmentRefusal.objects.get()
    assert (refusal.screen, refusal.address) == ("address_limit", "203.0.113.7")


def test_rest_passes_the_visitors_address_to_the_screen(client, operator, program):
    client.force_login(operator)
    partner = client_of(program)

    def attach_by_rest():
        return client.post(
            "/api/v1/referrals/attach",
            {
                "client": client_of(program).pk,
                "partner": partner.pk,
                "program": program.pk,
                "address": "203.0.113.7",
            },
            content_type="application/json",
        )

    with time_machine.travel(AT, tick=False):
        answers = [attach_by_rest() for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 409]
    assert answers[0].json()["address"] == "203.0.113.7"
    assert "from 203.0.113.7 in a day" in answers[2].json()["detail"]
    assert AttachmentRefusal.objects.get().partner == partner


def test_no_limit_when_the_program_sets_none(program):
    program.link_attachments_per_address = None
    program.save()
    partner = client_of(program)
    for _ in range(5):
        attach(program, partner, client_of(program), address="203.0.113.7")
    assert Referral.objects.count() == 5


def test_click_based_registration_is_screened_by_the_clicks_address(client, operator, program):
    # given a partner, and three visitors clicking their link from one address
    partner = client_of(program, email="pat@example.com")
    services.partner_enrol(program=program, partner=partner, actor=ACTOR)
    door = Door(client)
    link = f"https://shop.example/join?from={partner.pk}"
    with time_machine.travel(AT, tick=False):
        clicks = [
            client.get(
                "/billmgr",
                {"func": "referralprogram.registerclick", "p": link},
                REMOTE_ADDR="203.0.113.9",
            )
            for _ in range(3)
        ]
        ids = [c.json()["cntid"] for c in clicks]
        made = [
            door("account.edit", sok="ok", name=f"V{n}", project=program.provider_id, sesid=cntid)
            for n, cntid in enumerate(ids)
        ]
        # and one registering with the partner's own e-mail through the partner id
        twin = door(
            "account.edit",
            sok="ok",
            name="Twin",
            email="PAT@example.com",
            project=program.provider_id,
            partner=partner.pk,
        )
    # then every one is registered; two are attached, the third and the twin are refused and
    # recorded, and the admin shows the refusals on the partner's page
    assert [m.get("ok") for m in [*made, twin]] == [True] * 4, [*made, twin]
    attached = set(Referral.objects.values_list("client__name", flat=True))
    assert attached == {"V0", "V1"}
    assert sorted(AttachmentRefusal.objects.values_list("screen", flat=True)) == [
        "address_limit",
        "same_email",
    ]
    client.force_login(operator)
    page = client.get(
        f"/admin/referrals/referralprogram/{program.pk}/partner/{partner.pk}/"
    ).content.decode()
    assert "Refused attachments (2)" in page and "203.0.113.9" in page


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_address_limit_holds_under_parallel_attachments():
    program = ReferralProgramFactory(
        start_date=datetime.date(2026, 1, 1), link_attachments_per_address=3
    )
    partner = client_of(program)
    newcomers = [client_of(program) for _ in range(10)]

    def one(newcomer):
        try:
            return attach(program, partner, newcomer, address="203.0.113.7")
        except services.AttachRefused:
            return None

    made = [r for r in run_in_threads(one, newcomers) if r is not None]
    assert len(made) == 3 == Referral.objects.count()
    assert AttachmentRefusal.objects.filter(screen="address_limit").count() == 7


def test_a_refusal_is_recorded_whole_or_not_at_all(program, monkeypatch):
    # given a partner and a client with the partner's e-mail, and a history write that fails
    partner = client_of(program, email="jane@example.com")
    client = client_of(program, email="JANE@example.com")

    def history_fails(**kwargs):
        raise RuntimeError("history is down")

    monkeypatch.setattr(services, "history_record", history_fails)
    # when the screen refuses the attachment and recording it fails half-way
    with pytest.raises(RuntimeError):
        attach(program, partner, client)
    # then no refusal row stands without its history line
    assert not AttachmentRefusal.objects.exists()
