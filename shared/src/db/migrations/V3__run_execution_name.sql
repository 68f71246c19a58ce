-- The execution that created a run (the schedule's `scheduled-<id>`; the CLI names its executions
-- after the run id instead), so a run can be found from the name in a notification. Unique: one
-- execution creates at most one run, which also makes select-tickers' retries idempotent.
ALTER TABLE backfill_run
    ADD COLUMN IF NOT EXISTS execution_name VARCHAR(80);
CREATE UNIQUE INDEX IF NOT EXISTS backfill_run_execution_name_key
    ON backfill_run (execution_name) WHERE execution_name IS NOT NULL;
