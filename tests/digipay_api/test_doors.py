"""One program, several doors: a DigiPay program is in the admin and the billmgr list, and earns
rewards by the same accrual as any other."""

from decimal import Decimal

import pytest

from common.actors import Actor
from digipay_api.models import DigiPayProgram
from referrals import services as referral_services
from referrals.accrual import rewards_accrue
from referrals.models import Referral, Reward
from tests.factories import ClientFactory, ExpenseFactory

pytestmark = pytest.mark.django_db


def test_a_digipay_program_shows_in_the_admin(client, digipay, operator):
    # given a program posted through DigiPay
    program_id = digipay.created_id(referral_program_title="Seen everywhere")
    program = DigiPayProgram.objects.get(public_id=program_id).program
    # when an operator opens the admin
    client.force_login(operator)
    listing = client.get("/admin/referrals/referralprogram/")
    change = client.get(f"/admin/referrals/referralprogram/{program.pk}/change/")
    mapping = client.get("/admin/digipay_api/digipayprogram/")
    # then the program is listed and opens like any other
    assert listing.status_code == change.status_code == mapping.status_code == 200
    assert b"Seen everywhere" in listing.content
    assert program_id.encode() in mapping.content


@pytest.mark.parametrize("out", ["bjson", "json", "xml"])
def test_a_digipay_program_is_in_the_billmgr_list_under_the_companys_provider(
    door, digipay, company, out
):
    digipay.created_id(referral_program_title="Seen everywhere")
    rows = door("referralprogram", out=out)["elem"]
    assert {(r["name"], r["project"]) for r in rows} == {("Seen everywhere", company.name)}


def referral_into(program, provider) -> Referral:
    """A partner and a client of the provider, the client referred by the partner's link."""
    partner = ClientFactory(provider=provider)
    referred = ClientFactory(provider=provider)
    return referral_services.referral_attach(
        client=referred,
        partner_id=partner.pk,
        program=program,
        source=Referral.Source.LINK,
        actor=Actor.system("test"),
    )


@pytest.mark.parametrize(
    ("referfrom", "referto", "users", "expected"),
    [
        (1, 1, 1, [("referrer", "partner", "cash")]),
        (3, 1, 1, [("referrer", "partner", "points")]),
        (1, 3, 2, [("referee", "client", "points")]),
        (3, 1, 3, [("referee", "client", "cash"), ("referrer", "partner", "points")]),
    ],
)
def test_a_digipay_program_is_rewarded_by_accrual_as_it_was_told(
    digipay, company, referfrom, referto, users, expected
):
    # given a DigiPay program paying 10% of every charge, to whom and in what it says
    program_id = digipay.created_id(
        referfrom_rewards_type=referfrom,
        referto_rewards_type=referto,
        referral_reward_users=users,
        expiry_date=0,
        max_referral=None,
        min_referrals=None,
        referral_condition=["reward:10%"],
    )
    program = DigiPayProgram.objects.get(public_id=program_id).program
    # and a referral who is charged 80
    referral = referral_into(program, company.provider)
    ExpenseFactory(client=referral.client, amount=Decimal("80"), currency=program.currency)
    # when rewards accrue
    added = rewards_accrue(program=program)
    # then each beneficiary earns 8, in the kind the program names for them
    people = {"partner": referral.partner, "client": referral.client}
    got = sorted(
        (r.role, r.beneficiary, r.kind, r.amount)
        for r in Reward.objects.filter(rule__program=program)
    )
    assert got == [(b, people[who], kind, Decimal("8")) for b, who, kind in expected]
    assert added == len(expected)


def test_the_refer_part_of_referral_condition_holds_back_rewards_until_it_is_met(digipay, company):
    # given a program paying 5 per charge once the partner has brought 2 referrals
    program_id = digipay.created_id(
        expiry_date=0,
        max_referral=None,
        min_referrals=None,
        referral_condition=["refer>=2", "reward:5"],
    )
    program = DigiPayProgram.objects.get(public_id=program_id).program
    first = referral_into(program, company.provider)
    ExpenseFactory(client=first.client, amount=Decimal("40"), currency=program.currency)
    # when it accrues with one referral, nothing is earned
    assert rewards_accrue(program=program) == 0
    # and once the same partner brings a second, the first's charge earns 5
    second = ClientFactory(provider=company.provider)
    referral_services.referral_attach(
        client=second,
        partner_id=first.partner_id,
        program=program,
        source=Referral.Source.LINK,
        actor=Actor.system("test"),
    )
    assert rewards_accrue(program=program) == 1
    reward = Reward.objects.get()
    assert (reward.beneficiary, reward.amount, reward.kind) == (first.partner, Decimal("5"), "cash")


def test_max_referral_bounds_a_partners_referrals(digipay, company):
    # given the spec's program: at most one referral per partner
    program_id = digipay.created_id(expiry_date=0)
    program = DigiPayProgram.objects.get(public_id=program_id).program
    first = referral_into(program, company.provider)
    # when the partner brings a second client, the attachment is refused
    with pytest.raises(referral_services.AttachRefused, match="most referrals"):
        referral_services.referral_attach(
            client=ClientFactory(provider=company.provider),
            partner_id=first.partner_id,
            program=program,
            source=Referral.Source.LINK,
            actor=Actor.system("test"),
        )
