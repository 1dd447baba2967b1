"""What a rule pays per qualifying expense, one class per reward type: validation, description,
which expenses can earn under it, and the amount (as SQL for PostgreSQL's set-based accrual and in
Python for SQLite's, both rounding half up to the currency's minor unit)."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Q

from common.money import money_round
from referrals.models import Rule


def _shown(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


class RewardType:
    reward_type: str = ""

    def validate(self, rule: Rule) -> None:
        pass

    def describe(self, rule: Rule) -> str:
        raise NotImplementedError

    def earning_expenses(self, rule: Rule) -> Q:
        """Which of the program's expenses can earn under the rule (before its conditions)."""
        return Q()

    def amount_sql(self, rule: Rule) -> tuple[str, list]:
        """The reward of one row of the accrual's selection (columns `q.e_amount` and
        `q.e_minor_units`), as SQL and its parameters."""
        raise NotImplementedError

    def amount(self, rule: Rule, expense_amount: Decimal, minor_units: int) -> Decimal:
        raise NotImplementedError


class Percent(RewardType):
    reward_type = Rule.RewardType.PERCENT

    def validate(self, rule):
        if rule.amount > 100:
            raise ValidationError({"amount": "A percentage is 100 at most."})

    def describe(self, rule):
        return f"{_shown(rule.amount)}% of each qualifying expense, in the expense's currency"

    def amount_sql(self, rule):
        return "ROUND(q.e_amount * %s / 100, q.e_minor_units)", [rule.amount]

    def amount(self, rule, expense_amount, minor_units):
        return money_round(expense_amount * rule.amount / 100, minor_units=minor_units)


class Fixed(RewardType):
    """A fixed amount is in the program's currency, and the program does not convert: expenses in
    other currencies earn nothing under the rule."""

    reward_type = Rule.RewardType.FIXED

    def validate(self, rule):
        if rule.program_id is None:
            return
        currency = rule.program.reward_currency
        if rule.amount != money_round(rule.amount, minor_units=currency.minor_units):
            places = currency.minor_units
            raise ValidationError(
                {
                    "amount": f"A fixed reward is in {currency.iso}, which has no fractions: "
                    "give a whole amount."
                    if places == 0
                    else f"A fixed reward is in {currency.iso}: {places} decimal places at most."
                }
            )

    def describe(self, rule):
        currency = rule.program.reward_currency.iso
        return (
            f"{_shown(rule.amount)} {currency} per qualifying expense in {currency}; "
            f"expenses in other currencies earn nothing under this rule"
        )

    def earning_expenses(self, rule):
        return Q(currency_id=rule.program.reward_currency.pk)

    # Rounded like every reward: a rule saved before its program changed currency may be finer
    # than the currency it now pays in.
    def amount_sql(self, rule):
        return "ROUND(%s, q.e_minor_units)", [rule.amount]

    def amount(self, rule, expense_amount, minor_units):
        return money_round(rule.amount, minor_units=minor_units)


REGISTRY: dict[str, RewardType] = {t.reward_type: t for t in (Percent(), Fixed())}
assert set(REGISTRY) == set(Rule.RewardType.values), "every reward type has its class"


def reward_type_of(reward_type: str) -> RewardType:
    return REGISTRY[reward_type]
