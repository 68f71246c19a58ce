-- The grouped daily strategy (issue 9): a run may fetch Polygon's grouped daily bars, one request
-- per day for every ticker, instead of one ranged request per ticker. The run keeps the strategy
-- it was created with (a resume never switches), and existing runs are per-ticker runs.
ALTER TABLE backfill_run
    ADD COLUMN IF NOT EXISTS strategy VARCHAR(16) NOT NULL DEFAULT 'per-ticker';

-- A grouped run's work queue: one row per weekday of its window, in batches of contiguous days.
-- fetch-batch claims a day with FOR UPDATE SKIP LOCKED and marks it `done` in the transaction
-- that stores the day's bars, so a day is never stored twice by concurrent invocations.
-- Per-ticker progress stays in backfill_progress (one row per ticker, as for per-ticker runs).
CREATE TABLE IF NOT EXISTS backfill_day (
    run_id           VARCHAR(64) NOT NULL REFERENCES backfill_run (run_id) ON DELETE CASCADE,
    day              DATE NOT NULL,
    batch            INTEGER NOT NULL,
    -- pending | done
    status           VARCHAR(20) NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- The run's tickers the provider listed that day, and the rows their bars inserted.
    tickers_listed   INTEGER,
    records_inserted INTEGER NOT NULL DEFAULT 0,
    error_name       VARCHAR(64),
    error_message    TEXT,
    completed_at     TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, day)
);
CREATE INDEX IF NOT EXISTS idx_backfill_day_batch ON backfill_day (run_id, batch, status);
