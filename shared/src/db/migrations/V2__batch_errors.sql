-- Why a batch ended without finishing: the error the state machine caught after its retries, or
-- the error fetch-batch raised. Lets `backfill status` and finalize-run explain a stuck batch.
ALTER TABLE backfill_batch
    ADD COLUMN IF NOT EXISTS last_error_name    VARCHAR(64),
    ADD COLUMN IF NOT EXISTS last_error_message TEXT;
