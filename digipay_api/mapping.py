"""DigiPay's numbers and names <-> a referral program's fields: the whole translation table.

| DigiPay field            | values                                        | ReferralProgram field     |
|--------------------------|-----------------------------------------------|---------------------------|
| referral_program_title   | text, unique in the company                   | name                      |
| referfrom_rewards_type   | 1 cash, 3 points                              | referrer_reward_kind      |
| referto_rewards_type     | 1 cash, 3 points                              | referee_reward_kind       |
| referral_reward_users    | 1 from user, 2 to user, 3 both                | rewarded (referrer, referee, both) |
| referral_for             | 1 customer, 2 agent, 3 merchant               | audience                  |
| expiry_date              | unix seconds, the last day (0 = none)         | end_date (inclusive)      |
| min_referrals            | whole number                                  | min_referrals             |
| max_referral             | whole number                                  | max_referrals             |
| message                  | text                                          | message                   |
| currency_id              | the company's 32-hex currency id              | currency                  |
| status                   | 1 active, 2 inactive (3 expired, read only)   | status                    |
| referral_condition       | strings, see conditions.py                    | a Rule and RuleConditions |
"""

import datetime

from django.utils import timezone

from referrals.models import ProgramState, ReferralProgram, RewardKind

# The choice sets of the DigiPay fields; SPECTACULAR_SETTINGS names each in the schema.
REWARD_TYPE_CHOICES = [(1, "cash"), (3, "points")]
REFERRAL_FOR_CHOICES = [(1, "customer"), (2, "agent"), (3, "merchant")]
REWARD_USERS_CHOICES = [(1, "from user (the referrer)"), (2, "to user (the referred)"), (3, "both")]
STATUS_CHOICES = [(1, "active"), (2, "inactive"), (3, "expired")]
WRITABLE_STATUS_CHOICES = [(1, "active"), (2, "inactive")]
FLAG_CHOICES = [(0, "no"), (1, "yes")]
SUCCESS_CHOICES = [(1, "success")]
FAILURE_CHOICES = [(0, "failure")]

REWARD_KINDS = {1: RewardKind.CASH, 3: RewardKind.POINTS}
REWARDED = {
    1: ReferralProgram.Rewarded.REFERRER,
    2: ReferralProgram.Rewarded.REFEREE,
    3: ReferralProgram.Rewarded.BOTH,
}
AUDIENCES = {1: "customer", 2: "agent", 3: "merchant"}
ACTIVE, INACTIVE, EXPIRED = 1, 2, 3
STATUSES = {ACTIVE: "active", INACTIVE: "inactive", EXPIRED: "expired"}
WRITABLE_STATUSES = {
    ACTIVE: ReferralProgram.Status.ACTIVE,
    INACTIVE: ReferralProgram.Status.INACTIVE,
}

# A program field (or a rule's, or a service's argument) -> the DigiPay field it came from.
FIELD_NAMES = {
    "name": "referral_program_title",
    "referrer_reward_kind": "referfrom_rewards_type",
    "referee_reward_kind": "referto_rewards_type",
    "rewarded": "referral_reward_users",
    "audience": "referral_for",
    "start_date": "expiry_date",
    "end_date": "expiry_date",
    "min_referrals": "min_referrals",
    "max_referrals": "max_referral",
    "message": "message",
    "currency": "currency_id",
    "status": "status",
    "elid": "referral_program_id",
    "provider": "CompanyID",
    "__all__": "non_field_errors",
}
# Anything a rule or rule condition complains about came from referral_condition.
CONDITION_FIELD = "referral_condition"

# The latest expiry accepted: 3000-01-01T00:00:00Z.
MAX_TIMESTAMP = 32_503_680_000


def _inverse(table: dict) -> dict:
    return {v: k for k, v in table.items()}


def program_fields(data: dict) -> dict:
    """Validated DigiPay input (currency_id already a billing Currency) -> ReferralProgram
    fields, only those given. referral_condition is not a field: it becomes a rule."""
    fields = {}
    if "referral_program_title" in data:
        fields["name"] = data["referral_program_title"]
    if "referfrom_rewards_type" in data:
        fields["referrer_reward_kind"] = REWARD_KINDS[data["referfrom_rewards_type"]]
    if "referto_rewards_type" in data:
        fields["referee_reward_kind"] = REWARD_KINDS[data["referto_rewards_type"]]
    if "referral_reward_users" in data:
        fields["rewarded"] = REWARDED[data["referral_reward_users"]]
    if "referral_for" in data:
        fields["audience"] = AUDIENCES[data["referral_for"]]
    if "expiry_date" in data:
        fields["end_date"] = day_of(data["expiry_date"])
    if "min_referrals" in data:
        fields["min_referrals"] = data["min_referrals"]
    if "max_referral" in data:
        fields["max_referrals"] = data["max_referral"]
    if "message" in data:
        fields["message"] = data["message"] or ""
    if "currency_id" in data:
        fields["currency"] = data["currency_id"]
    if "status" in data:
        fields["status"] = WRITABLE_STATUSES[data["status"]]
    return fields


def day_at(timestamp: int) -> datetime.date:
    """Unix seconds -> the day they fall on here (TIME_ZONE)."""
    return timezone.localtime(datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)).date()


def day_of(timestamp: int | None) -> datetime.date | None:
    """An expiry_date -> the program's last day; 0 or null -> none (the program never ends)."""
    return day_at(timestamp) if timestamp else None


def timestamp_of(day: datetime.date | None) -> int | None:
    """A day -> unix seconds of its first moment here; day_of() reads it back as the same day."""
    if day is None:
        return None
    return int(timezone.make_aware(datetime.datetime.combine(day, datetime.time.min)).timestamp())


def reward_type_of(kind: str) -> int:
    return _inverse(REWARD_KINDS)[kind]


def reward_users_of(rewarded: str) -> int:
    return _inverse(REWARDED)[rewarded]


def referral_for_of(audience: str) -> int | None:
    return _inverse(AUDIENCES).get(audience)


# DigiPay's status of a program in each state (ReferralProgram.state_on): DigiPay has no
# "planned", and a program it creates starts the day it is posted.
STATUS_OF_STATE = {
    ProgramState.PLANNED: ACTIVE,
    ProgramState.LIVE: ACTIVE,
    ProgramState.ENDED: EXPIRED,
    ProgramState.INACTIVE: INACTIVE,
}


def states_of(status: int) -> list[ProgramState]:
    """The program states DigiPay shows as `status`."""
    return [state for state, shown in STATUS_OF_STATE.items() if shown == status]


def status_of(program: ReferralProgram, today: datetime.date | None = None) -> int:
    return STATUS_OF_STATE[program.state_on(today)]


def digipay_field(name: str) -> str:
    return FIELD_NAMES.get(name, CONDITION_FIELD)
