"""The program page's rewards chart and partner list, and the partner page with its payout button."""

import datetime
import re
from decimal import Decimal
from html import unescape

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.services import expense_create
from common.actors import Actor
from common.models import History
from referrals import selectors, services
from referrals.accrual import rewards_accrue
from referrals.models import Payout, Referral, Reward, Rule
from tests.factories import (
    ClientFactory,
    CurrencyFactory,
    ExpenseFactory,
    PartnershipFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RewardFactory,
    RuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


def at(year: int, month: int, day: int = 10) -> datetime.datetime:
    return datetime.datetime(year, month, day, 12, tzinfo=datetime.UTC)


def partner_page(program_id: int, client_id: int) -> str:
    return f"/admin/referrals/referralprogram/{program_id}/partner/{client_id}/"


def table(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of the table with this id."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert found, f"no table #{table_id} on the page"
    body = found.group(1).split("</thead>")[-1]
    return [
        [
            unescape(re.sub(r"<[^>]+>|\s+", " ", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def text_of(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</td>', html, re.S)
    assert found, f"no #{element_id} on the page"
    return unescape(re.sub(r"<[^>]+>|\s+", " ", found.group(1))).strip()


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="admin-user", is_superuser=True, is_staff=True))
    return client


@pytest.fixture
def program_with_rewards():
    """A partner enrolled with code and link; two referrals; a 10% rule; March earned 7.50 USD
    in two rewards (paid), April 4.00 USD in one (unpaid); every reward accrued in May."""
    program = ReferralProgramFactory(
        name="Friends",
        promocode="FRIEND@ID@",
        url="https://example.com/join",
        start_date=datetime.date(2025, 1, 1),
    )
    partner = ClientFactory(name="Paula", provider=program.provider)
    services.partner_enrol(program=program, partner=partner, actor=SYSTEM, at=at(2025, 1, 2))
    ann = ReferralFactory(
        program=program, partner=partner, client__name="Ann", joined_at=at(2025, 2, 1)
    )
    bob = ReferralFactory(
        program=program, partner=partner, client__name="Bob", joined_at=at(2025, 2, 5)
    )
    RuleFactory(program=program, name="10%", amount=Decimal("10"))
    usd = program.provider.currency
    expense_create(client=ann.client, amount=Decimal("50.00"), currency=usd, created_at=at(2025, 3))
    expense_create(client=bob.client, amount=Decimal("25.00"), currency=usd, created_at=at(2025, 3))
    with time_machine.travel(at(2025, 5, 1), tick=False):
        rewards_accrue(program=program)
        services.payouts_create(program=program, partner=partner, reference="MARCH-1", actor=SYSTEM)
        expense_create(
            client=ann.client, amount=Decimal("40.00"), currency=usd, created_at=at(2025, 4)
        )
        rewards_accrue(program=program)
    return program, partner


def test_partner_page_shows_code_link_referrals_months_balance_and_payouts(
    admin_client, program_with_rewards
):
    # given a partner with two referrals, rewards in March (paid) and April (unpaid)
    program, partner = program_with_rewards
    # when the operator opens their page
    response = admin_client.get(partner_page(program.pk, partner.pk))
    # then it shows the code and link they hand out
    assert response.status_code == 200
    html = response.content.decode()
    assert text_of(html, "partner-code") == f"FRIEND{partner.pk}"
    assert text_of(html, "partner-link") == f"https://example.com/join?from={partner.pk}"
    # and their referrals, newest first, as BILLmanager 6 lists them: name and e-mail, how they
    # came, joined, all they spent, what payouts paid on them, the rules that rewarded them,
    # first and last purchase
    rule = str(Rule.objects.get(program=program).pk)
    assert table(html, "partner-referrals") == [
        [
            "Bob (bob@example.com)",
            "By promo code",
            "2025-02-05 12:00",
            "25.00 USD",
            "2.50 USD",
            rule,
            "2025-03-10 12:00",
            "2025-03-10 12:00",
        ],
        [
            "Ann (ann@example.com)",
            "By promo code",
            "2025-02-01 12:00",
            "90.00 USD",
            "5.00 USD",
            rule,
            "2025-03-10 12:00",
            "2025-04-10 12:00",
        ],
    ]
    # and the rewards per month of the purchases that earned them (not of the May accrual run)
    assert table(html, "partner-months") == [
        ["2025-03", "2", "7.50 USD"],
        ["2025-04", "1", "4.00 USD"],
    ]
    assert '<figure class="chart">' in html and "<svg" in html
    assert re.findall(r"<title>(.*?)</title>", html)[1:] == [
        "2025-03: 7.50 USD",
        "2025-04: 4.00 USD",
    ]
    # and what they earned, what is unpaid, and the payout already made
    assert text_of(html, "partner-earned") == "11.50 USD"
    assert text_of(html, "partner-unpaid").startswith("4.00 USD")
    assert [row[1:] for row in table(html, "partner-payouts")] == [
        ["system", "MARCH-1", "7.50 USD", "2", "pending"]
    ]
    assert "Pay unpaid rewards" in html


def test_rewards_per_month_sums_each_month_and_currency_apart():
    # given rewards of one partner in two months and two currencies, all written on one day
    referral = ReferralFactory()
    rule = RuleFactory(program=referral.program, name="fixed", amount=Decimal("1"))
    usd, eur = CurrencyFactory(iso="USD"), CurrencyFactory(iso="EUR", name="Euro")
    for when, amount, currency in [
        (at(2025, 1, 1), "1.25", usd),
        (at(2025, 1, 31), "2.50", usd),
        (at(2025, 1, 15), "9.00", eur),
        (at(2025, 2, 1), "3.00", usd),
    ]:
        RewardFactory(
            beneficiary=referral.partner,
            referral=referral,
            rule=rule,
            expense=ExpenseFactory(client=referral.client, created_at=when, currency=currency),
            amount=Decimal(amount),
            currency=currency,
            created_at=at(2025, 6, 1),
        )
    # when they are summed per month
    months = selectors.rewards_per_month(Reward.objects.filter(beneficiary=referral.partner))
    # then each (month, currency) is one line with its count and sum, oldest first
    assert [(m.label, m.currency, m.amount.amount, m.count) for m in months] == [
        ("2025-01", "EUR", Decimal("9.00"), 1),
        ("2025-01", "USD", Decimal("3.75"), 2),
        ("2025-02", "USD", Decimal("3.00"), 1),
    ]


def confirmation(html: str) -> dict[str, str]:
    """The hidden and text fields of the confirmation form, as the browser would post them."""
    form = re.search(r'<form method="post"[^>]*>(.*?)</form>', html, re.S).group(1)
    fields = dict(re.findall(r'<input type="(?:hidden|text)" name="([^"]+)" value="([^"]*)"', form))
    fields |= dict(
        re.findall(r'<input id="[^"]+" type="text" name="([^"]+)" value="([^"]*)"', form)
    )
    return fields


def test_pay_asks_for_confirmation_with_the_amounts_then_records_who_when_and_reference(
    admin_client, program_with_rewards
):
    # given a partner with 4.00 USD unpaid
    program, partner = program_with_rewards
    url = partner_page(program.pk, partner.pk) + "pay/"
    # when the operator presses "Pay unpaid rewards"
    asked = admin_client.get(url)
    # then nothing is paid yet: a page asks for confirmation, with the amount per currency
    html = asked.content.decode()
    assert asked.status_code == 200 and "Pay unpaid rewards?" in html
    assert re.findall(r"<li>(.*?)</li>", html.split('id="pay-totals"')[1])[:1] == ["4.00 USD"]
    assert Reward.objects.filter(payout__isnull=True).count() == 1
    # when they confirm with their reference
    fields = confirmation(html) | {"reference": "BANK-2025-0042"}
    paid = admin_client.post(url, fields, follow=True)
    # then they are back on the partner page, told what was paid, and the ledger agrees
    assert paid.redirect_chain == [(partner_page(program.pk, partner.pk), 302)]
    assert "Paid 4.00 USD to Paula (reference BANK-2025-0042):" in paid.content.decode()
    latest = Payout.objects.latest("pk")
    assert (latest.amount, latest.partner, latest.reference, latest.paid_by) == (
        Decimal("4.00"),
        partner,
        "BANK-2025-0042",
        "admin-user",
    )
    assert not Reward.objects.filter(payout__isnull=True).exists()
    assert History.objects.filter(object_id=program.pk, action="admin:reward.payout").count() == 1
    # when the same confirmation is posted again (a second tab, a double click)
    again = admin_client.post(url, fields, follow=True)
    # then nothing more is paid, and the message says why
    assert "Nothing was paid: What is due has changed" in again.content.decode()
    assert Payout.objects.count() == 2  # the March payout and this one
    assert text_of(again.content.decode(), "partner-unpaid").startswith("—")
    # and with nothing left, the button leads back with a word instead of a page
    assert "no payable rewards" in admin_client.get(url, follow=True).content.decode()


def test_a_confirmation_pays_what_it_showed_not_what_accrued_since(
    admin_client, program_with_rewards
):
    # given the confirmation page for the partner's 4.00 USD
    program, partner = program_with_rewards
    url = partner_page(program.pk, partner.pk) + "pay/"
    fields = confirmation(admin_client.get(url).content.decode())
    # when a new reward accrues before the operator confirms
    ann = Referral.objects.get(program=program, client__name="Ann")
    with time_machine.travel(at(2025, 5, 2), tick=False):
        expense_create(
            client=ann.client,
            amount=Decimal("10.00"),
            currency=program.provider.currency,
            created_at=at(2025, 5, 2),
        )
        rewards_accrue(program=program)
    admin_client.post(url, fields)
    # then the 4.00 USD they saw is paid and the new 1.00 USD waits for the next payment
    assert Payout.objects.latest("pk").amount == Decimal("4.00")
    assert [r.amount for r in Reward.objects.filter(payout__isnull=True)] == [Decimal("1.00")]


def test_paying_needs_the_add_payout_permission(client, program_with_rewards):
    # given a staff user who may view programs but not add payouts
    program, partner = program_with_rewards
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_referralprogram"))
    client.force_login(clerk)
    page = partner_page(program.pk, partner.pk)
    # when they open the partner page, then they see it without the pay button
    response = client.get(page)
    assert response.status_code == 200 and "Pay unpaid rewards" not in response.content.decode()
    # when they ask to pay or post a payment anyway, then it is refused and nothing is paid
    assert client.get(page + "pay/").status_code == 403
    assert client.post(page + "pay/", {"confirm": "yes", "reference": "X"}).status_code == 403
    assert Payout.objects.count() == 1 and Reward.objects.filter(payout__isnull=True).count() == 1
    # when they are given the permission, then the same confirmation pays
    clerk.user_permissions.add(Permission.objects.get(codename="add_payout"))
    fields = confirmation(client.get(page + "pay/").content.decode())
    assert client.post(page + "pay/", fields).status_code == 302
    assert Payout.objects.count() == 2
    # someone logged out is sent to the login page
    client.logout()
    assert client.post(page + "pay/").url.startswith("/admin/login/")


def test_a_client_who_is_no_partner_of_the_program_gives_404(admin_client, program_with_rewards):
    program, _ = program_with_rewards
    # given a client of the provider who is not enrolled and has brought nobody
    stranger = ClientFactory(provider=program.provider)
    # and a referred client, and a partner of another program
    referred = Referral.objects.filter(program=program).first().client
    elsewhere = ReferralFactory().partner
    # then their partner pages in this program do not exist, nor does payment for them
    for client_id in (stranger.pk, referred.pk, elsewhere.pk, 999_999):
        assert admin_client.get(partner_page(program.pk, client_id)).status_code == 404
        assert admin_client.get(partner_page(program.pk, client_id) + "pay/").status_code == 404
    # and a partner who has brought referrals without being enrolled has a page
    unenrolled = ReferralFactory(program=program).partner
    response = admin_client.get(partner_page(program.pk, unenrolled.pk))
    assert response.status_code == 200
    assert text_of(response.content.decode(), "partner-code") == f"FRIEND{unenrolled.pk}"


def test_program_page_shows_the_chart_and_partners_with_their_figures(
    admin_client, program_with_rewards
):
    # given the partner with rewards, and an enrolled partner who has brought nobody yet
    program, partner = program_with_rewards
    newcomer = ClientFactory(name="Nina", provider=program.provider)
    services.partner_enrol(program=program, partner=newcomer, actor=SYSTEM)
    # when the operator opens the program
    response = admin_client.get(f"/admin/referrals/referralprogram/{program.pk}/change/")
    html = response.content.decode()
    # then it shows the rewards per month as a chart
    assert response.status_code == 200
    assert '<figure class="chart">' in html and "Rewards per month" in html
    assert re.findall(r"<title>(.*?)</title>", html)[1:] == [
        "2025-03: 7.50 USD",
        "2025-04: 4.00 USD",
    ]
    # and every partner with referrals, earned, held, payable, paid and unpaid, and their payout
    # details, most referrals first
    assert table(html, "program-partners") == [
        [
            "Paula",
            f"FRIEND{partner.pk}",
            "2",
            "11.50 USD",
            "—",
            "4.00 USD",
            "7.50 USD",
            "4.00 USD",
            "—",
        ],
        ["Nina", f"FRIEND{newcomer.pk}", "0", "—", "—", "—", "—", "—", "—"],
    ]
    # and each partner links to their page, from the list and from the partners inline
    assert html.count(f'href="{partner_page(program.pk, partner.pk)}"') == 2
    assert html.count(f'href="{partner_page(program.pk, newcomer.pk)}"') == 2


def test_partnership_changelist_links_each_partner_to_their_page(
    admin_client, program_with_rewards
):
    program, partner = program_with_rewards
    response = admin_client.get("/admin/referrals/partnership/")
    assert f'href="{partner_page(program.pk, partner.pk)}"' in response.content.decode()


def test_program_chart_keeps_the_last_twelve_months_with_rewards(admin_client):
    # given rewards in 13 months, with a month without any among them
    referral = ReferralFactory()
    rule = RuleFactory(program=referral.program, name="fixed", amount=Decimal("1"))
    months = [(2024, m) for m in range(1, 13) if m != 6] + [(2025, 1), (2025, 2)]
    for year, month in months:
        expense = ExpenseFactory(client=referral.client, created_at=at(year, month))
        RewardFactory(
            beneficiary=referral.partner,
            referral=referral,
            rule=rule,
            expense=expense,
            amount=Decimal(month),
            currency=expense.currency,
        )
    # when the program page is drawn
    html = admin_client.get(
        f"/admin/referrals/referralprogram/{referral.program_id}/change/"
    ).content.decode()
    # then the chart has the twelve latest months that had rewards, the oldest one left out
    bars = re.findall(r"<title>(\d{4}-\d{2}): ", html)
    assert bars == [f"{y}-{m:02d}" for y, m in months[1:]]
    assert "2024-06" not in bars and len(bars) == 12


def test_pages_run_the_same_queries_for_more_partners_and_referrals(admin_client):
    # given a program with one partner and one referral
    program = ReferralProgramFactory(promocode="P@ID@", url="https://example.com/")

    def grow(n):
        for _ in range(n):
            partner = ClientFactory(provider=program.provider)
            PartnershipFactory(program=program, partner=partner, code=f"P{partner.pk}")
            referral = ReferralFactory(program=program, partner=partner)
            ExpenseFactory(client=referral.client)
        return partner

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    partner = grow(1)
    program_page = f"/admin/referrals/referralprogram/{program.pk}/change/"
    before = queries(program_page), queries(partner_page(program.pk, partner.pk))
    # when it has five more partners with referrals
    grow(5)
    ReferralFactory.create_batch(4, program=program, partner=partner)
    # then neither page runs more queries
    assert (queries(program_page), queries(partner_page(program.pk, partner.pk))) == before


def test_program_page_lists_the_partners_with_most_referrals_and_links_to_all(
    admin_client, program_with_rewards, monkeypatch
):
    # given a program page that lists one partner at most, and two partners
    monkeypatch.setattr("referrals.admin.PARTNERS_SHOWN", 1)
    program, _ = program_with_rewards
    services.partner_enrol(
        program=program, partner=ClientFactory(provider=program.provider), actor=SYSTEM
    )
    # when it is drawn
    html = admin_client.get(f"/admin/referrals/referralprogram/{program.pk}/change/").content
    # then it lists the one with the most referrals and links to the full list
    assert [row[0] for row in table(html.decode(), "program-partners")] == ["Paula"]
    assert f"/admin/referrals/partnership/?program__id__exact={program.pk}" in html.decode()
