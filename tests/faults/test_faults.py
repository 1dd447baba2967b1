"""Faults: a redeeming worker killed mid-transaction, and the database connection cut during code
generation and during accrual. Afterwards no limit is exceeded, no partial batch is visible, and a
re-run completes the work. PostgreSQL only: the faults are real processes and real backends."""

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.db import OperationalError, connection, connections

from common.actors import Actor
from promotions import services
from promotions.engine import Line, Order
from promotions.models import BudgetSpend, PromoCode, PromoCodeUsage, Redemption
from promotions.services import codes as code_services
from referrals import accrual
from referrals.models import AccrualMark, Reward
from tests.factories import (
    BudgetSpendFactory,
    ClientFactory,
    DiscountFactory,
    ExpenseFactory,
    PromoCodeFactory,
    PromotionFactory,
    ReferralFactory,
    ReferralProgramFactory,
    RuleFactory,
    TariffFactory,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ACTOR = Actor.system("faults")
REPO = Path(__file__).resolve().parents[2]


def terminate_backend(pid: int) -> None:
    """Cut one backend's connection from the server side, as a network or server fault would."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def order_for(code: PromoCode) -> Order:
    promotion = code.promotion
    client = ClientFactory(provider=promotion.provider)
    tariff = TariffFactory(provider=promotion.provider)
    return Order(
        client_id=client.pk,
        provider_id=promotion.provider_id,
        at=datetime.datetime.now(datetime.UTC),
        lines=(Line(tariff_id=tariff.pk, period=1, price=Decimal("10"), currency="USD"),),
        codes=(code.code,),
    )


# What every redeeming worker starts with, and how it redeems the order its arguments name.
WORKER_HEAD = textwrap.dedent(
    """
    import datetime, os, sys, time
    from decimal import Decimal
    import django
    django.setup()
    from common.actors import Actor
    from promotions import services
    from promotions.engine import Line, Order
    from promotions.services import redemption
    """
)
WORKER_REDEEM = textwrap.dedent(
    """
    client, provider, tariff, code = (int(a) if a.isdigit() else a for a in sys.argv[1:5])
    order = Order(
        client_id=client, provider_id=provider, at=datetime.datetime.now(datetime.UTC),
        lines=(Line(tariff_id=tariff, period=1, price=Decimal("10"), currency="USD"),),
        codes=(code,),
    )
    services.redemption_redeem(order=order, idempotency_key="killed", actor=Actor.system("w"))
    """
)
WORKER = (
    WORKER_HEAD
    + textwrap.dedent(
        """
    real_take = redemption._take_use

    def take_then_hang(**kwargs):
        usage = real_take(**kwargs)
        print("inside", flush=True)  # the use is taken, the transaction is open
        time.sleep(60)
        return usage

    redemption._take_use = take_then_hang
    # The writer that takes the use inside an open transaction (the one-statement writer takes
    # it inside its statement: see the test after this one).
    redemption._fits_one_statement = lambda *args: False
        """
    )
    + WORKER_REDEEM
)


def test_a_worker_killed_mid_redemption_leaves_the_code_unused_and_a_retry_redeems():
    # given a code that may be used once
    promotion = PromotionFactory(fromdate=datetime.date(2020, 1, 1), todate=None)
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    code = PromoCodeFactory(promotion=promotion, code="ONCE", uselimit=1)
    order = order_for(code)
    # when a worker process takes the use and is killed before it commits
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _test_database_url(),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            str(order.client_id),
            str(order.provider_id),
            str(order.lines[0].tariff_id),
            code.code,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout.readline().strip() == "inside"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
    # then nothing of its work is visible: the use is back and no usage or redemption exists
    assert PromoCode.objects.get(pk=code.pk).use_count == 0
    assert not PromoCodeUsage.objects.exists() and not Redemption.objects.exists()
    # and the same order under the same key redeems now, once
    _, created = services.redemption_redeem(order=order, idempotency_key="killed", actor=ACTOR)
    assert created and PromoCode.objects.get(pk=code.pk).use_count == 1


# A worker redeeming the order its arguments name, without hooks.
ONE_STATEMENT_WORKER = WORKER_HEAD + WORKER_REDEEM


ONE_STATEMENT = f'WITH r AS (INSERT INTO "{Redemption._meta.db_table}"'


def _backends_running(prefix: str) -> list[tuple[str | None]]:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE query LIKE %s AND pid <> "
            "pg_backend_pid() AND state = 'active'",
            [prefix + "%"],
        )
        return cursor.fetchall()


def _wait_for(predicate, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_inside_its_one_statement_redemption_leaves_all_or_nothing():
    # given a code that may be used once, of a promotion with a budget whose row another
    # connection holds locked, so the worker's one statement takes the code's use (its
    # redemption and usage written) and then waits on the budget's row
    promotion = PromotionFactory(
        fromdate=datetime.date(2020, 1, 1), todate=None, budget=Decimal("1000")
    )
    DiscountFactory(promotion=promotion, percentage=Decimal("10"))
    code = PromoCodeFactory(promotion=promotion, code="ONCE", uselimit=1)
    BudgetSpendFactory(promotion=promotion, period="total", spent=Decimal("0"))
    order = order_for(code)
    blocker = psycopg.connect(_test_database_url().replace("postgres://", "postgresql://"))
    blocker.execute(
        f"UPDATE {BudgetSpend._meta.db_table} SET spent = spent WHERE promotion_id = %s",
        [promotion.pk],
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _test_database_url(),
    }
    args = [str(order.client_id), str(order.provider_id), str(order.lines[0].tariff_id), "ONCE"]
    worker = subprocess.Popen(
        [sys.executable, "-c", ONE_STATEMENT_WORKER, *args], cwd=REPO, env=env
    )
    try:
        _wait_for(lambda: ("Lock",) in _backends_running(ONE_STATEMENT))
        # when the worker is killed while its statement waits, and the budget's row is let go
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
        blocker.rollback()
        blocker.close()
    # (the statement's backend finishes it: a statement sent is the server's to end)
    _wait_for(lambda: not _backends_running(ONE_STATEMENT))
    # then the code's use, its usage, the redemption and its charge are all written or none is
    written = Redemption.objects.count()
    assert written in (0, 1)
    assert PromoCode.objects.get(pk=code.pk).use_count == written
    assert PromoCodeUsage.objects.count() == written
    assert BudgetSpend.objects.get(promotion=promotion).spent == Decimal("1.00") * written
    # and the same order under the same key answers once: the written redemption, or a new one
    redemption, created = services.redemption_redeem(
        order=order, idempotency_key="killed", actor=Actor.system("w")
    )
    assert created == (written == 0)
    assert Redemption.objects.count() == 1 and PromoCode.objects.get(pk=code.pk).use_count == 1
    assert list(redemption.usages.values_list("promocode_id", flat=True)) == [code.pk]


def _test_database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def run_cut_after_first_progress(work):
    """Run `work(progress)` on a thread whose connection is cut at its first progress report."""
    outcome = {}

    def progress(done: int) -> None:
        if "pid" not in outcome:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            terminate_backend(outcome["pid"])

    def run() -> None:
        try:
            outcome["result"] = work(progress)
        except OperationalError as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return outcome


def test_a_cut_connection_during_generation_saves_no_code_and_a_rerun_makes_them_all(
    monkeypatch,
):
    # given batches of 1,000 codes, so 5,000 codes take five statements
    monkeypatch.setattr(code_services, "GENERATION_BATCH", 1000)
    promotion = PromotionFactory()

    def generate(progress):
        return services.promocodes_generate(
            promotion=promotion,
            template="CUT-??????",
            count=5000,
            digits_only=False,
            actor=ACTOR,
            progress=progress,
        )

    # when the connection is cut after the first batch
    outcome = run_cut_after_first_progress(generate)
    # then the generation failed and not one code of it is visible
    assert "error" in outcome and not PromoCode.objects.exists()
    # and a re-run makes exactly the 5,000 codes
    assert generate(lambda n: None) == 5000
    assert PromoCode.objects.filter(promotion=promotion).count() == 5000


def test_a_cut_connection_during_accrual_leaves_whole_chunks_and_a_rerun_completes(monkeypatch):
    # given 12 referrals with one expense each and chunks of 4 expense ids
    monkeypatch.setattr(accrual, "CHUNK_EXPENSES", 4)
    program = ReferralProgramFactory(start_date=datetime.date(2026, 1, 1))
    RuleFactory(program=program, name="10%", amount=Decimal("10"))
    expenses = []
    for _ in range(6):
        partner = ClientFactory(provider=program.provider)
        for _ in range(2):
            referral = ReferralFactory(
                program=program,
                partner=partner,
                source="link",
                joined_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
            )
            expenses.append(
                ExpenseFactory(
                    client=referral.client,
                    amount=Decimal("20"),
                    created_at=datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC),
                ).pk
            )

    # when the connection is cut right after the first chunk committed
    outcome = run_cut_after_first_progress(
        lambda progress: accrual.rewards_accrue(program=program, progress=progress)
    )
    # then the run stopped with whole chunks only: the rewarded expenses are the lowest ids,
    # a multiple of 4, and the rule's watermark says exactly how far it came
    assert "error" in outcome
    rewarded = sorted(Reward.objects.values_list("expense_id", flat=True))
    assert rewarded == sorted(expenses)[: len(rewarded)] and len(rewarded) in (4, 8)
    assert AccrualMark.objects.get().expenses_through == rewarded[-1]
    # and a re-run adds exactly the rest, each reward once
    assert accrual.rewards_accrue(program=program) == 12 - len(rewarded)
    assert Reward.objects.count() == 12
    assert Reward.objects.values("expense").distinct().count() == 12
