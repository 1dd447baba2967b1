import datetime
import threading

import pytest
from django.core.exceptions import ValidationError

from common.actors import Actor
from referrals import services
from referrals.models import ReferralProgram
from tests.conftest import run_in_threads
from tests.factories import ProviderFactory


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
