import datetime
import threading

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.actors import Actor
from referrals import services
from referrals.models import ProgramState, ReferralProgram
from tests.conftest import run_in_threads
from tests.factories import ProviderFactory, ReferralProgramFactory


@pytest.mark.django_db
def test_a_second_default_program_is_refused_on_the_field():
    provider = ProviderFactory()
    actor = Actor.system("test")
    services.program_create(
        actor=actor,
        provider=provider,
        name="A",
        start_date=datetime.date(2026, 1, 1),
        assign_by_default=True,
    )
    with pytest.raises(ValidationError) as refused:
        services.program_create(
            actor=actor,
            provider=provider,
            name="B",
            start_date=datetime.date(2026, 1, 1),
            assign_by_default=True,
        )
    assert "assign_by_default" in refused.value.message_dict


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_default_saves_leave_exactly_one_default():
    # given one provider and eight operators saving a default program at the same moment
    provider = ProviderFactory()
    barrier = threading.Barrier(8)

    def save(n):
        barrier.wait()
        try:
            services.program_create(
                actor=Actor.system("test"),
                provider=provider,
                name=f"Program {n}",
                start_date=datetime.date(2026, 1, 1),
                assign_by_default=True,
            )
            return "saved"
        except ValidationError as exc:
            assert "assign_by_default" in exc.message_dict
            return "refused"

    # when they all save on separate connections
    results = run_in_threads(save, list(range(8)))
    # then the database let exactly one through and the others were told why
    assert sorted(results) == ["refused"] * 7 + ["saved"]
    assert ReferralProgram.objects.filter(provider=provider, assign_by_default=True).count() == 1


# One title per provider, in the database -------------------------------------------------------


@pytest.mark.django_db
def test_a_title_is_unique_per_provider_in_any_letter_case():
    # given a program "Friends" of a provider
    provider = ProviderFactory()
    actor = Actor.system("test")
    kept = services.program_create(
        actor=actor, provider=provider, name="Friends", start_date=datetime.date(2026, 1, 1)
    )
    # when another program of the provider is named "FRIENDS", it is refused on the name
    with pytest.raises(ValidationError) as refused:
        services.program_create(
            actor=actor, provider=provider, name="FRIENDS", start_date=datetime.date(2026, 1, 1)
        )
    assert refused.value.error_dict["name"][0].code == "unique"
    # and so is renaming another program to it
    other = services.program_create(
        actor=actor, provider=provider, name="Others", start_date=datetime.date(2026, 1, 1)
    )
    with pytest.raises(ValidationError):
        services.program_update(program=other, actor=actor, name="friends")
    # while another provider may use it
    services.program_create(
        actor=actor,
        provider=ProviderFactory(),
        name="Friends",
        start_date=datetime.date(2026, 1, 1),
    )
    assert ReferralProgram.objects.filter(name__iexact="friends").count() == 2
    # and the database itself refuses a duplicate that skips the services
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ReferralProgramFactory(provider=provider, name="fRiEnDs")
    assert kept.name == "Friends"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_of_one_title_leave_exactly_one():
    provider = ProviderFactory()
    barrier = threading.Barrier(8)

    def save(n):
        barrier.wait()
        try:
            services.program_create(
                actor=Actor.system("test"),
                provider=provider,
                name="Spring" if n % 2 else "SPRING",
                start_date=datetime.date(2026, 1, 1),
            )
            return "saved"
        except ValidationError as exc:
            assert "name" in exc.message_dict
            return "refused"

    assert sorted(run_in_threads(save, list(range(8)))) == ["refused"] * 7 + ["saved"]


# Program states: the one definition of "live" -------------------------------------------------


def _days(n):
    return datetime.date(2026, 1, 1) + datetime.timedelta(days=n)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from(["active", "inactive"]),
    start=st.integers(min_value=0, max_value=20),
    length=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
    day=st.integers(min_value=-2, max_value=45),
)
def test_a_programs_state_is_the_one_its_queryset_puts_it_in(status, start, length, day):
    # a reference written out: switched off wins; then before, inside (end included), after
    end = None if length is None else start + length
    if status == "inactive":
        expected = ProgramState.INACTIVE
    elif day < start:
        expected = ProgramState.PLANNED
    elif end is None or day <= end:
        expected = ProgramState.LIVE
    else:
        expected = ProgramState.ENDED
    from django.db import transaction

    with transaction.atomic():
        program = ReferralProgramFactory(
            provider=ProviderFactory(),
            name="p",
            status=status,
            start_date=_days(start),
            end_date=None if end is None else _days(end),
        )
        on = _days(day)
        assert program.state_on(on) == expected
        found = {
            state
            for state in ProgramState
            if ReferralProgram.objects.in_states([state], day=on).filter(pk=program.pk).exists()
        }
        assert found == {expected}
        assert ReferralProgram.objects.live(on).filter(pk=program.pk).exists() == (
            expected == ProgramState.LIVE
        )
        transaction.set_rollback(True)


# Billing builds no knowledge of referrals -------------------------------------------------------


def test_billing_does_not_import_referrals():
    import ast
    from pathlib import Path

    billing = Path(__file__).resolve().parents[2] / "billing"
    imports = set()
    for path in billing.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imports.add((path.name, node.module.split(".")[0]))
            elif isinstance(node, ast.Import):
                imports |= {(path.name, alias.name.split(".")[0]) for alias in node.names}
    assert not {(name, module) for name, module in imports if module == "referrals"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_program_that_gains_a_referral_while_it_is_deleted_is_kept_with_the_reason(
    monkeypatch,
):
    # given a running program without referrals, a partner and a new client
    from tests.factories import ClientFactory

    program = ReferralProgramFactory()
    partner, newcomer = ClientFactory.create_batch(2, provider=program.provider)
    deleting = services.model_delete_many

    def attach_then_delete(**kwargs):
        # another operator's attachment commits after the "no referrals" check, before the delete
        run_in_threads(
            lambda client: services.referral_attach(
                client=client,
                partner_id=partner.pk,
                program=program,
                source="manual",
                actor=Actor.system("test"),
            ),
            [newcomer],
        )
        return deleting(**kwargs)

    monkeypatch.setattr(services, "model_delete_many", attach_then_delete)
    # when the program is deleted, then it is refused as one with referrals, and kept
    with pytest.raises(ValidationError) as refused:
        services.program_delete_many(programs=[program], actor=Actor.system("test"))
    assert refused.value.message_dict == {
        "elid": [f"{program.name} has referrals; make it inactive instead."]
    }
    assert ReferralProgram.objects.filter(pk=program.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rule_that_earns_a_reward_while_it_is_deleted_is_kept_with_the_reason(monkeypatch):
    # given a rule without rewards yet, and a referral's purchase that it will reward
    from referrals.accrual import rewards_accrue
    from tests.factories import ExpenseFactory, ReferralFactory, RuleFactory

    referral = ReferralFactory(program__start_date=datetime.date(2026, 1, 1))
    rule = RuleFactory(program=referral.program, name="10%")
    ExpenseFactory(client=referral.client)
    deleting = services.model_delete_many

    def accrue_then_delete(**kwargs):
        # accrual commits the rule's first reward after the "no rewards" check, before the delete
        run_in_threads(lambda _: rewards_accrue(), [None])
        return deleting(**kwargs)

    monkeypatch.setattr(services, "model_delete_many", accrue_then_delete)
    # when the rule is deleted, then it is refused as one with rewards, and kept
    with pytest.raises(ValidationError) as refused:
        services.rule_delete_many(rules=[rule], actor=Actor.system("test"))
    assert refused.value.message_dict == {"elid": ["10% has rewards; make it inactive instead."]}
    assert rule.rewards.count() == 1
