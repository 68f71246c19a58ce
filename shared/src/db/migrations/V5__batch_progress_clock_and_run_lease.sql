-- When a batch last made progress (a ticker finished, for good or bad), so that fetch-batch can
-- tell a batch that keeps failing on transient faults from one that is getting through them, and
-- give up (`stalled`) only after NO_PROGRESS_TIMEOUT_SECONDS without any. Existing batches count
-- from their last update.
ALTER TABLE backfill_batch
    ADD COLUMN IF NOT EXISTS last_progress_at   TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS consecutive_faults INTEGER NOT NULL DEFAULT 0;
UPDATE backfill_batch SET last_progress_at = updated_at WHERE last_progress_at IS NULL;
ALTER TABLE backfill_batch ALTER COLUMN last_progress_at SET DEFAULT now();
ALTER TABLE backfill_batch ALTER COLUMN last_progress_at SET NOT NULL;

-- One active execution per run: the execution working on a run holds its lease (its name) from
-- select-tickers (or from `backfill resume`, which takes it before starting the execution, so
-- that two resumes cannot both start) until finalize-run closes the run.
ALTER TABLE backfill_run
    ADD COLUMN IF NOT EXISTS lease_execution VARCHAR(80),
    ADD COLUMN IF NOT EXISTS lease_taken_at  TIMESTAMPTZ;
