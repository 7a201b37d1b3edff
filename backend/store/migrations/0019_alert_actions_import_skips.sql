-- Alerts a lead acknowledges and resolves (who and when; a clean check resolves as 'system'),
-- why a crossing proposed no retraining plan and what would unblock it, and the rows a
-- preference import skipped or dropped (line and reason), kept beside the version.
ALTER TABLE alerts ADD COLUMN acknowledged_by VARCHAR;
ALTER TABLE alerts ADD COLUMN acknowledged_at TIMESTAMP;
ALTER TABLE alerts ADD COLUMN resolved_by VARCHAR;
ALTER TABLE alerts ADD COLUMN no_plan_reason VARCHAR;   -- the plan that could not run: why
ALTER TABLE alerts ADD COLUMN no_plan_unblock VARCHAR;  -- and what would let it run
ALTER TABLE preference_set_versions ADD COLUMN skipped JSON;  -- {"invalid": n, "rows": [...]}
