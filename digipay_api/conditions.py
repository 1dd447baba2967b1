"""`referral_condition`: DigiPay's array of strings, as a referral rule and its conditions.

Every string holds one clause or several joined by `;`. A clause is NAME, an operator, a value:

    refer>=3            the partner has brought at least 3 referrals     (condition type 3)
    transaction>=100    the referral spent at least 100 in the period    (condition type 1)
    refer_type:both     which of the two decide: refer | transaction | both (all must hold) |
                        either (one is enough); also 1 | 2 | 3 | 4. Default: all that are given.
    reward:10%          what each qualifying charge earns: N% of it (percent) or N (fixed amount)
    period:month        the window `transaction` is measured over: month | quarter | year | program

`refer` and `transaction` take `<`, `<=`, `=`, `>=`, `>`, and `:` meaning `>=`. `reward` is needed
whenever the array is not empty. An empty array means no rule: the program earns nothing.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from common.comparison import SYMBOLS
from referrals.models import Rule, RuleCondition

OPERATORS = {"<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">": "gt", ":": "ge"}
CLAUSE = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>|=|:)\s*(\S(?:.*\S)?)\s*$", re.IGNORECASE)

REFER, TRANSACTION, BOTH, EITHER = "refer", "transaction", "both", "either"
REFER_TYPES = {"1": REFER, "2": TRANSACTION, "3": BOTH, "4": EITHER}
PERIODS = [choice.value for choice in Rule.Schedule]
EITHER_GROUP = "refer or transaction"
MAX_COUNT = 2_147_483_647
MAX_AMOUNT = Decimal("1e16")


@dataclass(frozen=True)
class Threshold:
    comparison: str  # lt | le | eq | ge | gt
    value: Decimal | int


@dataclass(frozen=True)
class ReferralCondition:
    refer_type: str  # refer | transaction | both | either; "" when nothing is measured
    refer: Threshold | None
    transaction: Threshold | None
    reward_type: str  # Rule.RewardType
    reward: Decimal
    period: str  # Rule.Schedule


def _amount(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what} takes a number such as 100 or 12.50") from None
    if not value.is_finite() or value < 0 or value >= MAX_AMOUNT:
        raise ValueError(f"{what} takes a number from 0 below 10^16")
    if value.as_tuple().exponent < -4:
        raise ValueError(f"{what} has 4 decimal places at most")
    return value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_COUNT:
        raise ValueError("refer takes a whole number of referrals, e.g. refer>=3")
    return int(text)


def _clauses(lines: list[str]) -> list[str]:
    return [part for line in lines for part in line.split(";") if part.strip()]


def parse(lines: list[str]) -> ReferralCondition | None:
    """The condition the strings describe, None for none; ValidationError names every bad one."""
    values: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for clause in _clauses(lines):
        match = CLAUSE.match(clause)
        if match is None:
            problems.append(f'"{clause.strip()}": write NAME:VALUE, e.g. refer>=3 or reward:10%')
            continue
        name, op, value = match.group(1).lower(), match.group(2), match.group(3)
        if name not in {"refer_type", REFER, TRANSACTION, "reward", "period"}:
            problems.append(
                f'"{clause.strip()}": {name} is none of refer_type, refer, transaction, reward, '
                "period"
            )
        elif name in values:
            problems.append(f'"{clause.strip()}": {name} is given twice')
        elif name not in (REFER, TRANSACTION) and op not in (":", "="):
            problems.append(f'"{clause.strip()}": {name} takes ":" (e.g. {name}:VALUE)')
        else:
            values[name] = (op, value)
    if problems:
        raise ValidationError(problems)
    if not values:
        return None
    try:
        return _build(values)
    except ValueError as exc:
        raise ValidationError([str(exc)]) from None


def _build(values: dict[str, tuple[str, str]]) -> ReferralCondition:
    refer = transaction = None
    if REFER in values:
        op, text = values[REFER]
        refer = Threshold(OPERATORS[op], _count(text))
    if TRANSACTION in values:
        op, text = values[TRANSACTION]
        transaction = Threshold(OPERATORS[op], _amount(text, "transaction"))
    given = [name for name, part in ((REFER, refer), (TRANSACTION, transaction)) if part]
    refer_type = _refer_type(values.get("refer_type", (":", ""))[1].lower(), given)
    if "reward" not in values:
        raise ValueError("say what a qualifying charge earns: reward:N% (percent) or reward:N")
    text = values["reward"][1]
    if text.endswith("%"):
        reward_type, reward = Rule.RewardType.PERCENT, _amount(text[:-1].strip(), "reward")
        if reward > 100:
            raise ValueError("a percent reward is 100% at most")
    else:
        reward_type, reward = Rule.RewardType.FIXED, _amount(text, "reward")
    period = values.get("period", (":", Rule.Schedule.MONTH))[1].lower()
    if period not in PERIODS:
        raise ValueError(f"period is one of {', '.join(PERIODS)}")
    return ReferralCondition(refer_type, refer, transaction, reward_type, reward, period)


def _refer_type(text: str, given: list[str]) -> str:
    if not text:
        return {0: "", 1: given[0] if given else "", 2: BOTH}[len(given)]
    refer_type = REFER_TYPES.get(text, text)
    needs = {REFER: [REFER], TRANSACTION: [TRANSACTION], BOTH: [REFER, TRANSACTION]}
    needs[EITHER] = needs[BOTH]
    if refer_type not in needs:
        raise ValueError("refer_type is refer (1), transaction (2), both (3) or either (4)")
    if given != needs[refer_type]:
        wanted = " and ".join(needs[refer_type])
        raise ValueError(f"refer_type:{refer_type} takes {wanted} and nothing else of the two")
    return refer_type


def condition_fields(condition: ReferralCondition) -> list[dict]:
    """The rule conditions to create, as keyword arguments of referrals.services."""
    group = {}
    if condition.refer_type == EITHER:
        group = {"group": "new", "groupname": EITHER_GROUP}
    rows = []
    if condition.refer:
        rows.append(
            {
                "ctype": RuleCondition.Type.PARTNER_REFERRALS,
                "comparison": condition.refer.comparison,
                "referral_count": condition.refer.value,
                **group,
            }
        )
        if group:
            group = {"group": EITHER_GROUP}
    if condition.transaction:
        rows.append(
            {
                "ctype": RuleCondition.Type.REFERRAL_SALES,
                "comparison": condition.transaction.comparison,
                "amount_ctype_1": condition.transaction.value,
                **group,
            }
        )
    return rows


def _shown(value) -> str:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def render(rule: Rule | None, conditions: list[RuleCondition]) -> list[str]:
    """The rule as `referral_condition` strings, the way `parse` reads them back."""
    if rule is None:
        return []
    refer = [c for c in conditions if c.ctype == RuleCondition.Type.PARTNER_REFERRALS]
    sales = [c for c in conditions if c.ctype == RuleCondition.Type.REFERRAL_SALES]
    lines = []
    if refer and sales:
        either = refer[0].group_id is not None and refer[0].group_id == sales[0].group_id
        lines.append(f"refer_type:{EITHER if either else BOTH}")
    elif refer or sales:
        lines.append(f"refer_type:{REFER if refer else TRANSACTION}")
    lines += [f"refer{SYMBOLS[c.comparison]}{c.referral_count}" for c in refer[:1]]
    lines += [f"transaction{SYMBOLS[c.comparison]}{_shown(c.amount_ctype_1)}" for c in sales[:1]]
    percent = rule.reward_type == Rule.RewardType.PERCENT
    lines.append(f"reward:{_shown(rule.amount)}{'%' if percent else ''}")
    lines.append(f"period:{rule.schedule}")
    return lines
