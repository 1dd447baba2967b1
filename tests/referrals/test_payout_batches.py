"""Holds, payout minimums, payout batches with their file, sent and failed payouts, payout details
masked in lists, and the read-only ledger on REST."""

import csv
import datetime
import io
import threading
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from common.actors import Actor
from common.models import History
from referrals import selectors, services
from referrals.accrual import rewards_accrue
from referrals.models import Payout, PayoutBatch, Reward
from tests.conftest import Door
from tests.factories import (
    CurrencyFactory,
    ExpenseFactory,
    ReferralFactory,
    RuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def day(n: int) -> datetime.datetime:
    return START + datetime.timedelta(days=n)


@pytest.fixture
def referral():
    referral = ReferralFactory(program__start_date=START.date(), partner__name="Paula")
    RuleFactory(program=referral.program, amount=Decimal("10"))
    return referral


def spend(referral, amount, on: int, currency=None):
    return ExpenseFactory(
        client=referral.client,
        amount=Decimal(amount),
        currency=currency or referral.program.provider.currency,
        created_at=day(on),
    )


def pay(referral, reference="P-1", **options):
    return services.payouts_create(
        program=referral.program,
        partner=referral.partner,
        reference=reference,
        actor=ACTOR,
        **options,
    )


def state_of(reward, at):
    return selectors.with_states(Reward.objects.filter(pk=reward.pk), at=at).get().state


# Holds ------------------------------------------------------------------------------------------


def test_a_reward_is_held_for_the_programs_days_after_the_purchase(referral):
    # given a 14-day hold and purchases on day 0 and day 10
    program = services.program_update(program=referral.program, actor=ACTOR, hold_days=14)
    spend(referral, "100", 0)
    spend(referral, "50", 10)
    rewards_accrue()
    early, late = Reward.objects.order_by("expense__created_at")
    assert (early.payable_at, late.payable_at) == (day(14), day(24))
    # then on day 13 both are held and nothing is paid
    with time_machine.travel(day(13), tick=False):
        assert (state_of(early, day(13)), state_of(late, day(13))) == ("held", "held")
        made = pay(referral)
        assert made.payouts == [] and made.batch is None
    # on day 14 the first is payable and paid alone; the second is still held
    with time_machine.travel(day(14), tick=False):
        [payout] = pay(referral, "P-14").payouts
        assert (payout.amount, payout.rewards_count) == (Decimal("10.00"), 1)
        [row], _ = selectors.partner_rows(program=program)
        assert [str(m) for m in row.balances.held] == ["5.00 USD"]
    # and on day 24 the second goes too
    with time_machine.travel(day(24), tick=False):
        assert pay(referral, "P-24").payouts[0].amount == Decimal("5.00")


# Thresholds -------------------------------------------------------------------------------------


def test_a_partner_is_paid_only_once_the_payable_balance_reaches_the_minimum(referral):
    # given a payout minimum of 20 USD and 15 USD payable (and 30 EUR: no minimum there)
    services.program_update(program=referral.program, actor=ACTOR, payout_minimum=Decimal("20"))
    spend(referral, "150", 0)
    spend(referral, "300", 0, currency=CurrencyFactory(iso="EUR", name="Euro"))
    rewards_accrue()
    # when paid, then the euros go and the dollars wait, and the payment says why
    made = pay(referral)
    assert [(p.currency.iso, p.amount) for p in made.payouts] == [("EUR", Decimal("30.00"))]
    [skip] = made.skipped
    assert str(skip) == (
        f"Paula in {referral.program.name}: the payable balance 15.00 USD is below the payout "
        "minimum 20.00 USD"
    )
    # and the preview shows the same before anything is paid
    spend(referral, "20", 1)
    rewards_accrue()
    preview = selectors.payout_preview([(referral.program, referral.partner)])
    assert preview.lines == [] and "17.00 USD is below" in str(preview.skipped[0])
    # when the balance reaches it, it is paid in full
    spend(referral, "30", 2)
    rewards_accrue()
    assert pay(referral, "P-2").payouts[0].amount == Decimal("20.00")


def test_the_admin_pay_page_says_who_is_below_the_minimum(admin_client, referral):
    services.program_update(program=referral.program, actor=ACTOR, payout_minimum=Decimal("50"))
    spend(referral, "100", 0)
    rewards_accrue()
    url = (
        f"/admin/referrals/referralprogram/{referral.program_id}/partner/{referral.partner_id}/pay/"
    )
    page = admin_client.get(url, follow=True).content.decode()
    assert "Nothing to pay: Paula" in page and "below the payout minimum 50.00 USD" in page
    assert not Payout.objects.exists()


# Batches, their file and their status -----------------------------------------------------------


@pytest.fixture
def paid_batch(referral):
    services.payout_details_set(
        program=referral.program,
        partner=referral.partner,
        details="DE89 3704 0044 0532 0130 00",
        actor=ACTOR,
    )
    other = ReferralFactory(program=referral.program, partner__name='=HYPERLINK("http://x","y")')
    for r in (referral, other):
        spend(r, "100", 0)
    rewards_accrue()
    made = services.payouts_create_many(
        partners=[(referral.program, referral.partner), (other.program, other.partner)],
        reference="BATCH-7",
        actor=ACTOR,
    )
    return made.batch


def test_paying_makes_one_batch_and_its_file_for_the_bank(paid_batch, referral, admin_client):
    # then the batch holds one payout per partner with the details they had
    assert paid_batch.reference == "BATCH-7" and paid_batch.payouts.count() == 2
    # and its file has a line per payout, details unmasked, a formula neutralised
    response = admin_client.post(
        "/admin/referrals/payoutbatch/",
        {"action": "export_file", "_selected_action": [paid_batch.pk]},
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert response["Content-Disposition"] == 'attachment; filename="batch-7.csv"'
    assert rows[0] == selectors.PAYOUT_FILE_HEADER
    assert [r[3:7] for r in rows[1:]] == [
        ["Paula", "DE89 3704 0044 0532 0130 00", "10.00", "USD"],
        ['\'=HYPERLINK("http://x","y")', "", "10.00", "USD"],
    ]
    # and the same reference cannot name another payment
    spend(referral, "10", 1)
    rewards_accrue()
    with pytest.raises(ValidationError, match="names an earlier payment"):
        pay(referral, "BATCH-7")


def test_a_failed_payout_gives_its_rewards_back_and_the_next_payment_pays_them(
    paid_batch, referral
):
    payout = paid_batch.payouts.get(partner=referral.partner)
    # when it is marked failed
    [moved] = services.payouts_mark_many(payouts=[payout], status="failed", actor=ACTOR)
    # then its rewards are payable again, it stays in history with its amount, out of the file
    assert moved.status == "failed" and Payout.objects.get(pk=payout.pk).amount == Decimal("10.00")
    assert Reward.objects.filter(beneficiary=referral.partner, payout__isnull=True).count() == 1
    assert referral.partner_id not in [r[2] for r in selectors.payout_file_rows(paid_batch)]
    assert History.objects.filter(desc__contains="marked failed; its 1 rewards are payable again")
    # and the next payment pays them in a new batch
    [again] = pay(referral, "BATCH-8").payouts
    assert (again.amount, again.batch.reference) == (Decimal("10.00"), "BATCH-8")


def test_a_payouts_status_moves_forward_only(paid_batch, referral):
    payout = paid_batch.payouts.get(partner=referral.partner)
    services.payout_batch_mark(batch=paid_batch, status="sent", actor=ACTOR)
    assert set(paid_batch.payouts.values_list("status", flat=True)) == {"sent"}
    # a sent payout may still fail (a transfer bounced); a failed one never comes back
    services.payouts_mark_many(payouts=[payout], status="failed", actor=ACTOR)
    with pytest.raises(ValidationError, match="cannot become sent"):
        services.payouts_mark_many(payouts=[payout], status="sent", actor=ACTOR)
    # and the database refuses the same past the services
    for sql in (
        "UPDATE referrals_payout SET status = 'sent' WHERE id = %s",
        "UPDATE referrals_payout SET status = 'pending' WHERE id = %s",
    ):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [payout.pk])
    # and a reward cannot leave a payout that has not failed
    kept = Reward.objects.filter(payout__isnull=False).first()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE referrals_reward SET payout_id = NULL WHERE id = %s", [kept.pk])


def test_batches_are_marked_and_listed_through_the_admin(admin_client, paid_batch):
    done = admin_client.post(
        "/admin/referrals/payoutbatch/",
        {"action": "mark_sent", "_selected_action": [paid_batch.pk]},
        follow=True,
    )
    assert "2 payouts marked sent." in done.content.decode()
    listing = admin_client.get("/admin/referrals/payoutbatch/").content.decode()
    assert "BATCH-7" in listing and "20.00 USD" in listing and "2 sent" in listing


# Payout details masked in lists -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "shown"),
    [
        ("DE89 3704 0044 0532 0130 00", "DE89 **** 3000"),
        ("paula.pay@example.com", "p***@example.com"),
        ("12345", "****45"),
        ("", ""),
    ],
)
def test_payout_details_are_masked(details, shown):
    assert selectors.masked(details) == shown


def test_lists_show_payout_details_masked(client, operator, paid_batch, referral):
    door = Door(client)
    rows = door("referralprogram.partner", elid=referral.program_id)["elem"]
    mine = next(r for r in rows if r["id"] == str(referral.partner_id))
    assert mine["payout_details"] == "DE89 **** 3000"
    client.force_login(operator)
    page = client.get("/admin/referrals/partnership/").content.decode()
    assert "DE89 **** 3000" in page and "0532" not in page
    assert "DE89 3704" not in client.get("/admin/referrals/payout/").content.decode()
    assert History.objects.filter(desc__endswith="set to DE89 **** 3000").exists()


# The door and REST -----------------------------------------------------------------------------


def test_the_func_door_sets_hold_and_minimum_and_lists_states(client, operator, referral):
    door = Door(client)
    answer = door(
        "referralprogram.edit",
        sok="ok",
        elid=referral.program_id,
        hold_days="30",
        payout_minimum="25.5",
    )
    assert answer["ok"]
    shown = door("referralprogram.edit", elid=referral.program_id)
    assert (shown["hold_days"], shown["payout_minimum"]) == ("30", "25.5")
    bad = door("referralprogram.edit", sok="ok", elid=referral.program_id, hold_days="4000")
    assert (bad["error"]["type"], bad["error"]["object"]) == ("value", "hold_days")
    spend(referral, "100", 0)
    rewards_accrue()
    with time_machine.travel(day(10), tick=False):
        [row] = door("referralprogram.reward", elid=referral.program_id)["elem"]
        assert (row["state"], row["amount"], row["reverses"]) == ("held", "10.00", "")
        [partner] = door("referralprogram.partner", elid=referral.program_id)["elem"]
        assert (partner["held"], partner["payable"], partner["paid"]) == ("10.00 USD", "", "")


@pytest.fixture
def api(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


def test_rest_lists_the_ledger_with_states_and_filters(api, referral):
    other = ReferralFactory(program=referral.program)
    spend(referral, "100", 0)
    bought = spend(other, "50", 3)
    rewards_accrue()
    pay(referral)
    from billing.services import expense_create

    expense_create(refunds=bought, amount=Decimal("-50"), actor=ACTOR)
    rewards_accrue()
    everything = api.get("/api/v1/rewards").json()
    assert everything["count"] == 3
    by_state = api.get("/api/v1/rewards", {"state": "reversed"}).json()["results"]
    assert [(r["partner"], r["amount"], r["reverses"]) for r in by_state] == [
        (other.partner_id, "5.0000", None)
    ]
    payable = api.get("/api/v1/rewards", {"state": "payable", "partner": other.partner_id}).json()
    assert [(r["amount"], r["state"]) for r in payable["results"]] == [("-5.0000", "payable")]
    paid = api.get(f"/api/v1/rewards?program={referral.program_id}&state=paid").json()["results"]
    assert [r["partner"] for r in paid] == [referral.partner_id]
    on_day = api.get("/api/v1/rewards", {"date": "2000-01-01"}).json()
    assert on_day["count"] == 0
    assert api.get("/api/v1/rewards", {"state": "lost"}).status_code == 400
    assert api.post("/api/v1/rewards", {}).status_code == 405


def test_rest_pays_fetches_the_file_and_marks_the_batch(api, referral):
    spend(referral, "100", 0)
    rewards_accrue()
    made = api.post(
        "/api/v1/payout-batches",
        {"program": referral.program_id, "reference": "API-1"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    batch = made.json()["batch"]
    assert [(p["amount"], p["status"]) for p in batch["payouts"]] == [("10.0000", "pending")]
    file = api.get(batch["file"])
    assert file.status_code == 200 and file["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(file.content.decode())))[1][:3] == [
        "API-1",
        str(batch["payouts"][0]["id"]),
        str(referral.partner_id),
    ]
    sent = api.post(
        f"/api/v1/payout-batches/{batch['id']}/status",
        {"status": "sent"},
        content_type="application/json",
    )
    assert sent.status_code == 200 and sent.json()["payouts"][0]["status"] == "sent"
    nothing = api.post(
        "/api/v1/payout-batches",
        {"program": referral.program_id, "reference": "API-2"},
        content_type="application/json",
    )
    assert nothing.status_code == 409 and nothing.json()["batch"] is None
    assert nothing.json()["detail"] == (
        "Nothing was paid: no partner has a payable balance (every reward has been paid "
        "already, or is still held)."
    )
    assert PayoutBatch.objects.count() == 1


def test_rest_pays_the_partners_above_the_minimum_and_names_who_it_skipped(api, referral):
    # given a payout minimum of 5.00: Paula earned 10.00, Quinn 1.00
    referral.program.payout_minimum = Decimal("5")
    referral.program.save()
    quinns = ReferralFactory(program=referral.program, partner__name="Quinn")
    spend(referral, "100", 0)
    spend(quinns, "10", 0)
    rewards_accrue()
    # when the program's partners are paid through REST
    made = api.post(
        "/api/v1/payout-batches",
        {"program": referral.program_id, "reference": "API-MIN"},
        content_type="application/json",
    )
    # then Paula is paid, and Quinn is named among the skipped with the reason and balance
    assert made.status_code == 201, made.content
    answer = made.json()
    assert [(p["partner"], p["amount"]) for p in answer["batch"]["payouts"]] == [
        (referral.partner_id, "10.0000")
    ]
    assert [(s["partner"], s["balance"]["amount"]) for s in answer["skipped"]] == [
        (quinns.partner_id, "1.0000")
    ]
    assert "minimum" in answer["skipped"][0]["reason"]
    assert Payout.objects.filter(partner=quinns.partner).count() == 0


def test_points_are_never_paid_out_as_money(referral):
    # given a program that pays the referrer in cash and the referred client in points
    program = referral.program
    program.rewarded, program.referee_reward_kind = "both", "points"
    program.save()
    spend(referral, "100", 0)
    rewards_accrue()
    # when both are paid
    paid = services.payouts_create_many(
        partners=[(program, referral.partner), (program, referral.client)],
        reference="P-PTS",
        actor=ACTOR,
    )
    # then the referrer gets 10.00 in money, and the client's 10 points stay on their account
    assert [(p.partner, p.amount) for p in paid.payouts] == [(referral.partner, Decimal("10"))]
    points = Reward.objects.get(beneficiary=referral.client)
    assert (points.kind, points.payout) == ("points", None)
    # and the client's balance shows no money owed
    balances = selectors.partner_summary(program=program, partner=referral.client).balances
    assert (balances.payable, balances.unpaid) == ([], [])


def test_only_who_may_pay_reads_the_payout_file(client, paid_batch):
    viewer = UserFactory(username="viewer")
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_payoutbatch"))
    client.force_login(viewer)
    assert client.get("/api/v1/payout-batches").status_code == 200
    assert client.get(f"/api/v1/payout-batches/{paid_batch.pk}/file").status_code == 403


def test_the_admin_lists_batches_payouts_rewards_by_state_and_refusals(admin_client, paid_batch):
    batch_page = admin_client.get(f"/admin/referrals/payoutbatch/{paid_batch.pk}/change/")
    assert batch_page.status_code == 200 and "DE89 **** 3000" in batch_page.content.decode()
    by_state = admin_client.get("/admin/referrals/reward/", {"state": "paid"}).content.decode()
    assert by_state.count('class="field-state">paid<') == 2
    assert (
        admin_client.get("/admin/referrals/reward/", {"state": "held"}).context["cl"].result_count
        == 0
    )
    assert admin_client.get("/admin/referrals/attachmentrefusal/").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_marked_sent_while_one_payout_fails_leaves_that_one_failed(paid_batch, referral):
    # given a batch of two pending payouts, one of which an operator is marking failed (its
    # transaction open, the payout locked)
    from tests.conftest import run_in_threads
    from tests.ops.conftest import wait_until

    failing = paid_batch.payouts.get(partner=referral.partner)
    failed_locked, other_waits = threading.Event(), threading.Event()

    def fail_one():
        with transaction.atomic():
            services.payouts_mark_many(payouts=[failing], status="failed", actor=ACTOR)
            failed_locked.set()
            assert other_waits.wait(10)

    def mark_batch_sent():
        assert failed_locked.wait(10)
        return services.payout_batch_mark(batch=paid_batch, status="sent", actor=ACTOR)

    def watch():
        # the batch's marking is queued behind the failing payout's lock
        assert wait_until(lambda: lock_waits() > 0, seconds=10)
        other_waits.set()

    def run(step):
        return step()

    # when another operator marks the whole batch sent meanwhile
    results = run_in_threads(run, [fail_one, mark_batch_sent, watch])
    # then the batch's other payout is sent and the failed one stays failed
    statuses = dict(paid_batch.payouts.values_list("pk", "status"))
    assert statuses.pop(failing.pk) == "failed"
    assert list(statuses.values()) == ["sent"]
    assert [p.pk for p in results[1]] == list(statuses)


def lock_waits() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_rest_refuses_to_pay_partners_the_program_does_not_have(api, referral):
    # given a partner with a payable balance
    spend(referral, "100", 0)
    rewards_accrue()
    stranger = ReferralFactory().partner
    # when a payment names them and a client who is no partner of the program
    answer = api.post(
        "/api/v1/payout-batches",
        {
            "program": referral.program_id,
            "partners": [referral.partner_id, stranger.pk],
            "reference": "API-3",
        },
        content_type="application/json",
    )
    # then it is refused, naming the stranger, and nothing is paid
    assert answer.status_code == 400, answer.content
    assert answer.json() == {"partners": [f"Not partners of this program: [{stranger.pk}]"]}
    assert not PayoutBatch.objects.exists()


def test_rest_says_why_nothing_was_paid_when_every_balance_is_skipped(api, referral):
    # given a partner whose 10.00 payable is below the program's payout minimum of 20
    program = referral.program
    program.payout_minimum = Decimal("20")
    program.save()
    spend(referral, "100", 0)
    rewards_accrue()
    # when the program's partners are paid through REST
    answer = api.post(
        "/api/v1/payout-batches",
        {"program": program.pk, "reference": "API-4"},
        content_type="application/json",
    )
    # then nothing is paid, and the answer says why in words
    assert answer.status_code == 409, answer.content
    assert answer.json()["detail"] == (
        f"Nothing was paid: Paula in {program.name}: the payable balance 10.00 USD is below the "
        "payout minimum 20.00 USD."
    )
