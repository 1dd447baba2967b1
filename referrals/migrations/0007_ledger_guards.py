"""What guards the reward ledger in the database, on PostgreSQL and SQLite alike.

History: rewards and payouts are never deleted; a reward's money and references never change and
a paid reward stays with its payout, which exists; a payout never changes. Corrections are new
rows.

References: the ledger has no row-by-row foreign-key checks (migration 0006; they were most of
accrual's time). Accrual builds every row from the rows it names (tests/referrals/test_ledger.py),
rows never change afterwards, and these triggers refuse to delete what a reward names: its
expense, rule or referral. A reward's client is its referral's partner or client and its currency
its expense's, which the referral's and the expense's own foreign keys keep.

Deleting one of them waits for accrual statements in flight (an advisory lock accrual holds
shared), so a reward being written is seen. Each check goes through an index: the unique (rule, expense, role) key, probed per rule.
Note for tests: on SQLite a test that commits rewards cannot be flushed by DELETE (PostgreSQL's
flush truncates, which no row trigger sees); keep such tests on PostgreSQL.
"""

from django.db import migrations

KEPT = "are history: they are never deleted; corrections are new rows"
# The advisory lock accrual holds shared while it writes (referrals.accrual.ACCRUAL_LOCK).
ACCRUAL_LOCK = 7_302_115_001

POSTGRESQL = f"""
CREATE FUNCTION referrals_history_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% {KEPT}', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER referrals_reward_kept BEFORE DELETE ON referrals_reward
  FOR EACH ROW EXECUTE FUNCTION referrals_history_kept();
CREATE TRIGGER referrals_payout_kept BEFORE DELETE ON referrals_payout
  FOR EACH ROW EXECUTE FUNCTION referrals_history_kept();

CREATE FUNCTION referrals_reward_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.beneficiary_id, NEW.referral_id, NEW.rule_id, NEW.expense_id, NEW.role,
      NEW.amount, NEW.currency_id, NEW.kind, NEW.created_at)
     IS DISTINCT FROM (OLD.id, OLD.beneficiary_id, OLD.referral_id, OLD.rule_id, OLD.expense_id,
      OLD.role, OLD.amount, OLD.currency_id, OLD.kind, OLD.created_at) THEN
    RAISE EXCEPTION 'a reward is history: only its payout is set, once'
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.payout_id IS NOT NULL AND NEW.payout_id IS DISTINCT FROM OLD.payout_id THEN
    RAISE EXCEPTION 'a paid reward stays with its payout' USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_reward_unchanged BEFORE UPDATE ON referrals_reward
  FOR EACH ROW EXECUTE FUNCTION referrals_reward_unchanged();

-- A reward's payout exists (payouts are never deleted, so it keeps existing). A WHEN clause, so
-- that accrual's rows, which name no payout, never call the function.
CREATE FUNCTION referrals_reward_payout_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM referrals_payout WHERE id = NEW.payout_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'there is no payout %', NEW.payout_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_reward_payout_exists BEFORE INSERT OR UPDATE OF payout_id
  ON referrals_reward FOR EACH ROW WHEN (NEW.payout_id IS NOT NULL)
  EXECUTE FUNCTION referrals_reward_payout_exists();

CREATE FUNCTION referrals_payout_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW IS DISTINCT FROM OLD THEN
    RAISE EXCEPTION 'a payout is history: it never changes' USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_payout_unchanged BEFORE UPDATE ON referrals_payout
  FOR EACH ROW EXECUTE FUNCTION referrals_payout_unchanged();

CREATE FUNCTION referrals_rewarded_kept() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  named boolean;
BEGIN
  -- Wait for accrual statements in flight (they hold this lock shared), so that their rewards
  -- are seen; accrual waits in turn until this deletion commits, and then no longer sees the row.
  PERFORM pg_advisory_xact_lock({ACCRUAL_LOCK});
  IF TG_TABLE_NAME = 'billing_expense' THEN
    named := EXISTS (SELECT 1 FROM referrals_reward r
      WHERE r.rule_id IN (SELECT id FROM referrals_rule) AND r.expense_id = OLD.id);
  ELSIF TG_TABLE_NAME = 'referrals_rule' THEN
    named := EXISTS (SELECT 1 FROM referrals_reward r WHERE r.rule_id = OLD.id);
  ELSE
    named := EXISTS (SELECT 1 FROM referrals_reward r
      WHERE r.rule_id IN (SELECT id FROM referrals_rule)
        AND r.expense_id IN (SELECT e.id FROM billing_expense e WHERE e.client_id = OLD.client_id)
        AND r.referral_id = OLD.id);
  END IF;
  IF named THEN
    RAISE EXCEPTION 'a reward names % %: it cannot be deleted', TG_TABLE_NAME, OLD.id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER referrals_expense_rewarded BEFORE DELETE ON billing_expense
  FOR EACH ROW EXECUTE FUNCTION referrals_rewarded_kept();
CREATE TRIGGER referrals_rule_rewarded BEFORE DELETE ON referrals_rule
  FOR EACH ROW EXECUTE FUNCTION referrals_rewarded_kept();
CREATE TRIGGER referrals_referral_rewarded BEFORE DELETE ON referrals_referral
  FOR EACH ROW EXECUTE FUNCTION referrals_rewarded_kept();
"""

POSTGRESQL_REVERSE = """
DROP TRIGGER referrals_reward_kept ON referrals_reward;
DROP TRIGGER referrals_payout_kept ON referrals_payout;
DROP TRIGGER referrals_reward_unchanged ON referrals_reward;
DROP TRIGGER referrals_payout_unchanged ON referrals_payout;
DROP TRIGGER referrals_reward_payout_exists ON referrals_reward;
DROP TRIGGER referrals_expense_rewarded ON billing_expense;
DROP TRIGGER referrals_rule_rewarded ON referrals_rule;
DROP TRIGGER referrals_referral_rewarded ON referrals_referral;
DROP FUNCTION referrals_history_kept();
DROP FUNCTION referrals_reward_unchanged();
DROP FUNCTION referrals_payout_unchanged();
DROP FUNCTION referrals_reward_payout_exists();
DROP FUNCTION referrals_rewarded_kept();
"""

REWARD_COLUMNS = [
    "beneficiary_id",
    "referral_id",
    "rule_id",
    "expense_id",
    "role",
    "amount",
    "currency_id",
    "kind",
    "created_at",
]
CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in REWARD_COLUMNS)

SQLITE = [
    f"""CREATE TRIGGER referrals_reward_kept BEFORE DELETE ON referrals_reward
    BEGIN SELECT RAISE(ABORT, 'referrals_reward {KEPT}'); END""",
    f"""CREATE TRIGGER referrals_payout_kept BEFORE DELETE ON referrals_payout
    BEGIN SELECT RAISE(ABORT, 'referrals_payout {KEPT}'); END""",
    f"""CREATE TRIGGER referrals_reward_unchanged BEFORE UPDATE ON referrals_reward
    WHEN {CHANGED} OR NEW.id IS NOT OLD.id
    BEGIN SELECT RAISE(ABORT, 'a reward is history: only its payout is set, once'); END""",
    """CREATE TRIGGER referrals_reward_stays_paid BEFORE UPDATE ON referrals_reward
    WHEN OLD.payout_id IS NOT NULL AND NEW.payout_id IS NOT OLD.payout_id
    BEGIN SELECT RAISE(ABORT, 'a paid reward stays with its payout'); END""",
    """CREATE TRIGGER referrals_payout_unchanged BEFORE UPDATE ON referrals_payout
    BEGIN SELECT RAISE(ABORT, 'a payout is history: it never changes'); END""",
    """CREATE TRIGGER referrals_reward_payout_exists BEFORE INSERT ON referrals_reward
    WHEN NEW.payout_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM referrals_payout WHERE id = NEW.payout_id)
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such payout'); END""",
    """CREATE TRIGGER referrals_reward_payout_set BEFORE UPDATE OF payout_id ON referrals_reward
    WHEN NEW.payout_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM referrals_payout WHERE id = NEW.payout_id)
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such payout'); END""",
    """CREATE TRIGGER referrals_expense_rewarded BEFORE DELETE ON billing_expense
    WHEN EXISTS (SELECT 1 FROM referrals_reward WHERE expense_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'a reward names this expense: it cannot be deleted'); END""",
    """CREATE TRIGGER referrals_rule_rewarded BEFORE DELETE ON referrals_rule
    WHEN EXISTS (SELECT 1 FROM referrals_reward WHERE rule_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'a reward names this rule: it cannot be deleted'); END""",
    """CREATE TRIGGER referrals_referral_rewarded BEFORE DELETE ON referrals_referral
    WHEN EXISTS (SELECT 1 FROM referrals_reward WHERE referral_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'a reward names this referral: it cannot be deleted'); END""",
]
SQLITE_TRIGGERS = [
    "referrals_reward_kept",
    "referrals_payout_kept",
    "referrals_reward_unchanged",
    "referrals_reward_stays_paid",
    "referrals_payout_unchanged",
    "referrals_reward_payout_exists",
    "referrals_reward_payout_set",
    "referrals_expense_rewarded",
    "referrals_rule_rewarded",
    "referrals_referral_rewarded",
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_REVERSE, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [("referrals", "0006_ledger_at_the_write_floor"), ("billing", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
