"""The one condition-group implementation: OR inside a group, AND across groups, an ungrouped
condition a group of its own; the same for promotion conditions and referral rule conditions."""

from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError

from common.groups import ConditionGroups
from referrals.models import RuleCondition
from tests.factories import (
    ConditionFactory,
    ConditionGroupFactory,
    PromotionFactory,
    ReferralProgramFactory,
    RuleConditionGroupFactory,
    RuleFactory,
)


@dataclass(frozen=True)
class C:
    pk: int
    group_id: int | None
    holds: bool


TERMS = [
    # (conditions, holds)
    ([], True),
    ([C(1, None, True)], True),
    ([C(1, None, False)], False),
    ([C(1, 7, False), C(2, 7, True)], True),  # OR inside a group
    ([C(1, 7, False), C(2, 7, False), C(3, None, True)], False),
    ([C(1, 7, True), C(2, None, True), C(3, 8, False), C(4, 8, True)], True),
    ([C(1, None, True), C(2, None, False)], False),  # ungrouped ones are AND-ed
]


@pytest.mark.parametrize(("conditions", "holds"), TERMS)
def test_groups_are_or_within_and_across(conditions, holds):
    groups = ConditionGroups.of(conditions)
    assert (groups.first_failing(lambda c: c.holds) is None) is holds
    as_bool = groups.fold(each=lambda c: c.holds, any_of=any, all_of=all)
    assert as_bool is holds


def test_the_first_failing_term_is_named_with_all_its_alternatives():
    groups = ConditionGroups.of([C(1, None, True), C(2, 7, False), C(3, 7, False)])
    assert groups.first_failing(lambda c: c.holds) == (C(2, 7, False), C(3, 7, False))


def test_the_expression_brackets_groups():
    groups = ConditionGroups.of([C(1, 7, True), C(2, 7, True), C(3, None, True), C(4, 9, True)])
    text = groups.expression(lambda c: f"c{c.pk}", grouped=lambda c: bool(c.group_id))
    assert text == "(c1 OR c2) AND c3 AND (c4)"


def test_as_q_treats_an_always_true_condition_as_holding_its_group():
    from django.db.models import Q

    groups = ConditionGroups.of([C(1, 7, True), C(2, 7, True), C(3, None, True)])
    q = groups.as_q(lambda c: None if c.pk == 1 else Q(pk=c.pk))
    assert q == Q(pk=3)


@pytest.mark.django_db
def test_a_group_of_another_owner_is_refused_for_promotions_and_referral_rules():
    # given a group of another promotion
    foreign = ConditionGroupFactory(promotion=PromotionFactory())
    condition = ConditionFactory.build(promotion=PromotionFactory(), group=foreign)
    with pytest.raises(ValidationError) as exc:
        condition.full_clean()
    assert exc.value.message_dict["group"] == ["The group belongs to another promotion."]
    # and the same check serves referral rules
    program = ReferralProgramFactory()
    rule, other = (RuleFactory(program=program, name=n, amount=1) for n in "ab")
    group = RuleConditionGroupFactory(rule=other, name="g")
    with pytest.raises(ValidationError) as exc:
        RuleCondition(rule=rule, ctype="0", group=group).full_clean()
    assert exc.value.message_dict["group"] == ["The group belongs to another rule."]
