"""Money that flows back, step 3: the batch holds the reference, and the ledger's guards again.

What the database guards now, on PostgreSQL and SQLite alike (0007's guards, widened):
- Rewards, payouts and payout batches are never deleted; a batch never changes.
- A reward's money, references, `payable_at` and `reverses` never change. Its payout is set once,
  to a payout that exists and has not failed, and is given back (set to none) only when that
  payout has failed: the reward is payable again.
- A payout never changes but for its status, which moves forward only: pending -> sent or
  failed, sent -> failed.
- A reversing row (on a refund) agrees with the reward it reverses: same rule, role, credited
  client, referral, currency, kind and payable_at, its expense a refund of that reward's expense,
  and it gives back no more than the reward (checked once per statement on PostgreSQL, per row on
  SQLite). That all of a reward's reversals together stay within it follows from how accrual
  builds them (cumulative shares of the charge's refunds, which the database keeps within the
  charge, one reversal per refund by the unique key); a check of the sum cost 10 us per reversal
  (measured), and tests/referrals/test_refunds.py proves the construction against a reference.
- Nothing a reward names (expense, rule, referral) can be deleted; a deletion waits for accrual
  statements in flight (the advisory lock accrual holds shared).
"""

from django.db import migrations, models

KEPT = "are history: they are never deleted; corrections are new rows"
# The advisory lock accrual holds shared while it writes (referrals.accrual.ACCRUAL_LOCK).
ACCRUAL_LOCK = 7_302_115_001

REWARD_FIXED = [
    "id",
    "beneficiary_id",
    "referral_id",
    "rule_id",
    "expense_id",
    "role",
    "amount",
    "currency_id",
    "kind",
    "created_at",
    "payable_at",
    "reverses_id",
]
PAYOUT_FIXED = [
    "id",
    "batch_id",
    "program_id",
    "partner_id",
    "amount",
    "currency_id",
    "created_at",
    "paid_by",
    "payout_details",
    "rewards_count",
]
# The status moves a payout may make.
STATUS_MOVES = (
    "(OLD.status = 'pending' AND NEW.status IN ('sent', 'failed')) "
    "OR (OLD.status = 'sent' AND NEW.status = 'failed')"
)
AGREES = ["rule_id", "role", "beneficiary_id", "referral_id", "currency_id", "kind", "payable_at"]


def _row(prefix: str, columns: list[str]) -> str:
    return "(" + ", ".join(f"{prefix}.{c}" for c in columns) + ")"


POSTGRESQL = f"""
CREATE FUNCTION referrals_history_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% {KEPT}', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER referrals_reward_kept BEFORE DELETE ON referrals_reward
  FOR EACH ROW EXECUTE FUNCTION referrals_history_kept();
CREATE TRIGGER referrals_payout_kept BEFORE DELETE ON referrals_payout
  FOR EACH ROW EXECUTE FUNCTION referrals_history_kept();
CREATE TRIGGER referrals_payoutbatch_kept BEFORE DELETE ON referrals_payoutbatch
  FOR EACH ROW EXECUTE FUNCTION referrals_history_kept();

CREATE FUNCTION referrals_reward_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF {_row("NEW", REWARD_FIXED)} IS DISTINCT FROM {_row("OLD", REWARD_FIXED)} THEN
    RAISE EXCEPTION 'a reward is history: only its payout is set, once'
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.payout_id IS NOT NULL AND NEW.payout_id IS DISTINCT FROM OLD.payout_id AND (
      NEW.payout_id IS NOT NULL OR NOT EXISTS (
        SELECT 1 FROM referrals_payout WHERE id = OLD.payout_id AND status = 'failed')) THEN
    RAISE EXCEPTION 'a paid reward stays with its payout (unless the payout failed)'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_reward_unchanged BEFORE UPDATE ON referrals_reward
  FOR EACH ROW EXECUTE FUNCTION referrals_reward_unchanged();

-- A reward's payout exists and has not failed (payouts are never deleted). A WHEN clause, so
-- that accrual's rows, which name no payout, never call the function.
CREATE FUNCTION referrals_reward_payout_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM referrals_payout WHERE id = NEW.payout_id AND status <> 'failed' FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'there is no payout % to pay by', NEW.payout_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_reward_payout_exists BEFORE INSERT OR UPDATE OF payout_id
  ON referrals_reward FOR EACH ROW WHEN (NEW.payout_id IS NOT NULL)
  EXECUTE FUNCTION referrals_reward_payout_exists();

-- Once per statement, over the rows it inserted (a transition table: for accrual's million
-- plain rows only a pass over them; a row trigger cost 15 us per reversal, more than the rest of
-- writing it): every reversing row agrees with the reward it reverses, is on a refund of that
-- reward's expense and gives back no more than the reward. A transition table has no statistics:
-- the settings keep the plan to two index lookups per reversing row (a hash join would read the
-- whole ledger) and JIT away.
CREATE FUNCTION referrals_reward_reversal_agrees() RETURNS trigger LANGUAGE plpgsql
  SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad bigint;
BEGIN
  SELECT n.id INTO bad FROM inserted n
    LEFT JOIN referrals_reward r ON r.id = n.reverses_id
    LEFT JOIN billing_expense e ON e.id = n.expense_id
    WHERE n.reverses_id IS NOT NULL
      AND (r.id IS NULL OR r.reverses_id IS NOT NULL
           OR {_row("r", AGREES)} IS DISTINCT FROM {_row("n", AGREES)}
           OR e.refunds_id IS DISTINCT FROM r.expense_id
           OR r.amount + n.amount < 0)
    LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'reward % does not reverse a reward of its rule, role and client on the '
      'expense its refund refunds, within what that reward earned', bad
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER referrals_reward_reversal_agrees AFTER INSERT ON referrals_reward
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
  EXECUTE FUNCTION referrals_reward_reversal_agrees();

CREATE FUNCTION referrals_payout_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF {_row("NEW", PAYOUT_FIXED)} IS DISTINCT FROM {_row("OLD", PAYOUT_FIXED)}
     OR (NEW.status IS NOT DISTINCT FROM OLD.status
         AND NEW.status_changed_at IS DISTINCT FROM OLD.status_changed_at) THEN
    RAISE EXCEPTION 'a payout is history: only its status moves on'
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT ({STATUS_MOVES}) THEN
    RAISE EXCEPTION 'a payout''s status moves forward only: pending -> sent or failed, '
      'sent -> failed (it was %)', OLD.status USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_payout_unchanged BEFORE UPDATE ON referrals_payout
  FOR EACH ROW EXECUTE FUNCTION referrals_payout_unchanged();

CREATE FUNCTION referrals_payoutbatch_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW IS DISTINCT FROM OLD THEN
    RAISE EXCEPTION 'a payout batch is history: it never changes'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER referrals_payoutbatch_unchanged BEFORE UPDATE ON referrals_payoutbatch
  FOR EACH ROW EXECUTE FUNCTION referrals_payoutbatch_unchanged();

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

PG_TRIGGERS = {
    "referrals_reward_kept": "referrals_reward",
    "referrals_payout_kept": "referrals_payout",
    "referrals_payoutbatch_kept": "referrals_payoutbatch",
    "referrals_reward_unchanged": "referrals_reward",
    "referrals_reward_payout_exists": "referrals_reward",
    "referrals_reward_reversal_agrees": "referrals_reward",
    "referrals_payout_unchanged": "referrals_payout",
    "referrals_payoutbatch_unchanged": "referrals_payoutbatch",
    "referrals_expense_rewarded": "billing_expense",
    "referrals_rule_rewarded": "referrals_rule",
    "referrals_referral_rewarded": "referrals_referral",
}
PG_FUNCTIONS = [
    "referrals_history_kept",
    "referrals_reward_unchanged",
    "referrals_reward_payout_exists",
    "referrals_reward_reversal_agrees",
    "referrals_payout_unchanged",
    "referrals_payoutbatch_unchanged",
    "referrals_rewarded_kept",
]


def _changed(columns: list[str]) -> str:
    return " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)


# SQLite keeps decimals as floating point: a sum may miss by a rounding error far below the
# ledger's 4 decimal places, which must not refuse an exact reversal.
SQLITE_SLACK = "0.00005"

SQLITE = {
    "referrals_reward_kept": f"""CREATE TRIGGER referrals_reward_kept
    BEFORE DELETE ON referrals_reward
    BEGIN SELECT RAISE(ABORT, 'referrals_reward {KEPT}'); END""",
    "referrals_payout_kept": f"""CREATE TRIGGER referrals_payout_kept
    BEFORE DELETE ON referrals_payout
    BEGIN SELECT RAISE(ABORT, 'referrals_payout {KEPT}'); END""",
    "referrals_payoutbatch_kept": f"""CREATE TRIGGER referrals_payoutbatch_kept
    BEFORE DELETE ON referrals_payoutbatch
    BEGIN SELECT RAISE(ABORT, 'referrals_payoutbatch {KEPT}'); END""",
    "referrals_reward_unchanged": f"""CREATE TRIGGER referrals_reward_unchanged
    BEFORE UPDATE ON referrals_reward WHEN {_changed(REWARD_FIXED)}
    BEGIN SELECT RAISE(ABORT, 'a reward is history: only its payout is set, once'); END""",
    "referrals_reward_stays_paid": """CREATE TRIGGER referrals_reward_stays_paid
    BEFORE UPDATE ON referrals_reward
    WHEN OLD.payout_id IS NOT NULL AND NEW.payout_id IS NOT OLD.payout_id AND (
      NEW.payout_id IS NOT NULL OR NOT EXISTS (
        SELECT 1 FROM referrals_payout WHERE id = OLD.payout_id AND status = 'failed'))
    BEGIN SELECT RAISE(ABORT, 'a paid reward stays with its payout (unless the payout failed)');
    END""",
    "referrals_reward_payout_exists": """CREATE TRIGGER referrals_reward_payout_exists
    BEFORE INSERT ON referrals_reward
    WHEN NEW.payout_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM referrals_payout WHERE id = NEW.payout_id AND status <> 'failed')
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such payout to pay by'); END""",
    "referrals_reward_payout_set": """CREATE TRIGGER referrals_reward_payout_set
    BEFORE UPDATE OF payout_id ON referrals_reward
    WHEN NEW.payout_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM referrals_payout WHERE id = NEW.payout_id AND status <> 'failed')
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such payout to pay by'); END""",
    "referrals_reward_reversal_agrees": f"""CREATE TRIGGER referrals_reward_reversal_agrees
    BEFORE INSERT ON referrals_reward
    WHEN NEW.reverses_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM referrals_reward r JOIN billing_expense e ON e.id = NEW.expense_id
      WHERE r.id = NEW.reverses_id AND r.reverses_id IS NULL
        AND {" AND ".join(f"r.{c} = NEW.{c}" for c in AGREES)}
        AND e.refunds_id = r.expense_id
        AND r.amount + NEW.amount > -{SQLITE_SLACK})
    BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: a reversing row agrees with the reward
      it reverses and gives back no more than it earned'); END""",
    "referrals_payout_unchanged": f"""CREATE TRIGGER referrals_payout_unchanged
    BEFORE UPDATE ON referrals_payout
    WHEN {_changed(PAYOUT_FIXED)}
      OR (NEW.status IS OLD.status AND NEW.status_changed_at IS NOT OLD.status_changed_at)
      OR (NEW.status IS NOT OLD.status AND NOT ({STATUS_MOVES}))
    BEGIN SELECT RAISE(ABORT, 'a payout is history: only its status moves on, forward'); END""",
    "referrals_payoutbatch_unchanged": """CREATE TRIGGER referrals_payoutbatch_unchanged
    BEFORE UPDATE ON referrals_payoutbatch
    BEGIN SELECT RAISE(ABORT, 'a payout batch is history: it never changes'); END""",
    "referrals_expense_rewarded": """CREATE TRIGGER referrals_expense_rewarded
    BEFORE DELETE ON billing_expense
    WHEN EXISTS (SELECT 1 FROM referrals_reward WHERE expense_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'a reward names this expense: it cannot be deleted'); END""",
    "referrals_rule_rewarded": """CREATE TRIGGER referrals_rule_rewarded
    BEFORE DELETE ON referrals_rule
    WHEN EXISTS (SELECT 1 FROM referrals_reward WHERE rule_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'a reward names this rule: it cannot be deleted'); END""",
    "referrals_referral_rewarded": """CREATE TRIGGER referrals_referral_rewarded
    BEFORE DELETE ON referrals_referral
    WHEN EXISTS (SELECT 1 FROM referrals_reward WHERE referral_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'a reward names this referral: it cannot be deleted'); END""",
}


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif vendor == "sqlite":
        for name, statement in SQLITE.items():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)
            schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for name, table in PG_TRIGGERS.items():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}", params=None)
        for name in PG_FUNCTIONS:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()", params=None)
    elif vendor == "sqlite":
        for name in SQLITE:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [("referrals", "0009_money_flows_back_data"), ("billing", "0002_refunds")]

    operations = [
        migrations.RemoveConstraint(model_name="payout", name="payout_has_reference"),
        migrations.RemoveField(model_name="payout", name="reference"),
        migrations.AlterField(
            model_name="payout",
            name="batch",
            field=models.ForeignKey(
                on_delete=models.deletion.PROTECT,
                related_name="payouts",
                to="referrals.payoutbatch",
            ),
        ),
        migrations.AlterField(
            model_name="reward", name="payable_at", field=models.DateTimeField()
        ),
        migrations.RunPython(install, uninstall),
    ]
