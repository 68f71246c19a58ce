-- The original job's five tables, created only where absent so that an existing database keeps
-- its definitions and rows; then the columns and tables this system adds.
--
-- The original tables below are the original's own definitions (types, NOT NULLs, keys, indexes;
-- see DESIGN.md "Data"). An earlier version of this file created invented stand-ins for them
-- (NUMERIC(14,4) prices among others); V4 brings databases created by that version to double
-- precision prices. A table that already exists is never altered here, and its indexes are its own:
-- each original table is created, with its indexes, only where it is absent.

DO $$
BEGIN
    IF to_regclass('ticker') IS NULL THEN
        CREATE TABLE ticker (
            symbol   VARCHAR PRIMARY KEY,
            name     VARCHAR NOT NULL,
            aliases  JSONB NOT NULL,
            exchange VARCHAR(50),
            sources  JSONB NOT NULL,
            is_sp500 BOOLEAN NOT NULL,
            cik      VARCHAR(20)
        );
    END IF;
END
$$;

DO $$
BEGIN
    IF to_regclass('article') IS NULL THEN
        CREATE TABLE article (
            id           BIGSERIAL PRIMARY KEY,
            source       VARCHAR NOT NULL,
            url          VARCHAR NOT NULL UNIQUE,
            published_at TIMESTAMPTZ NOT NULL,
            title        TEXT NOT NULL,
            text         TEXT,
            lang         VARCHAR,
            sentiment    DOUBLE PRECISION,
            reddit_id    VARCHAR(20) UNIQUE,
            subreddit    VARCHAR,
            author       VARCHAR,
            upvotes      INTEGER,
            num_comments INTEGER,
            reddit_url   VARCHAR,
            created_at   TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX ix_article_published_at ON article (published_at DESC);
    END IF;
END
$$;

DO $$
BEGIN
    IF to_regclass('article_ticker') IS NULL THEN
        CREATE TABLE article_ticker (
            article_id    BIGINT NOT NULL REFERENCES article (id) ON DELETE CASCADE,
            ticker        VARCHAR NOT NULL REFERENCES ticker (symbol),
            confidence    DOUBLE PRECISION NOT NULL,
            matched_terms JSON,
            PRIMARY KEY (article_id, ticker)
        );
        CREATE INDEX ix_article_ticker_ticker ON article_ticker (ticker);
    END IF;
END
$$;

-- Like the original, except for one thing: no foreign key to `ticker`, so that a database this
-- system creates for itself can backfill any symbol it is given. Where the key exists (the
-- original's database), select-tickers settles symbols missing from `ticker` before fetching.
DO $$
BEGIN
    IF to_regclass('stock_price_history') IS NULL THEN
        CREATE TABLE stock_price_history (
            id          BIGSERIAL PRIMARY KEY,
            symbol      VARCHAR NOT NULL,
            date        TIMESTAMPTZ NOT NULL,
            open_price  DOUBLE PRECISION,
            high_price  DOUBLE PRECISION,
            low_price   DOUBLE PRECISION,
            close_price DOUBLE PRECISION NOT NULL,
            volume      BIGINT,
            created_at  TIMESTAMPTZ NOT NULL,
            CONSTRAINT uq_stock_price_history_symbol_date UNIQUE (symbol, date)
        );
        CREATE INDEX ix_stock_price_history_symbol_date ON stock_price_history (symbol, date DESC);
        CREATE INDEX ix_stock_price_history_date ON stock_price_history (date DESC);
    END IF;
END
$$;
-- Set when a refresh changed a stored bar; NULL for bars never changed.
ALTER TABLE stock_price_history ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ;

DO $$
BEGIN
    IF to_regclass('backfill_progress') IS NULL THEN
        CREATE TABLE backfill_progress (
            id               BIGSERIAL PRIMARY KEY,
            run_id           VARCHAR(100) NOT NULL,
            symbol           VARCHAR NOT NULL,
            status           VARCHAR(20) NOT NULL,
            records_inserted INTEGER NOT NULL DEFAULT 0,
            error_message    TEXT,
            started_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            completed_at     TIMESTAMPTZ,
            CONSTRAINT uq_backfill_progress_run_symbol UNIQUE (run_id, symbol)
        );
        CREATE INDEX ix_backfill_progress_run_status ON backfill_progress (run_id, status);
    END IF;
END
$$;

ALTER TABLE backfill_progress
    ADD COLUMN IF NOT EXISTS batch           INTEGER,
    ADD COLUMN IF NOT EXISTS attempts        INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS error_name      VARCHAR(64),
    ADD COLUMN IF NOT EXISTS records_updated INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS bars_skipped    INTEGER NOT NULL DEFAULT 0,
    -- Cursor: the newest bar this run stored for the ticker.
    ADD COLUMN IF NOT EXISTS last_bar_at     TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS updated_at      TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS idx_backfill_progress_run_batch ON backfill_progress (run_id, batch, status);

-- Every run's parameters, so that a resume covers exactly the same window, interval and source.
CREATE TABLE IF NOT EXISTS backfill_run (
    run_id      VARCHAR(64) PRIMARY KEY,
    status      VARCHAR(32) NOT NULL DEFAULT 'running',
    start_date  DATE NOT NULL,
    end_date    DATE NOT NULL,
    interval    VARCHAR(8) NOT NULL,
    provider    VARCHAR(16) NOT NULL,
    selection   JSONB NOT NULL,
    batch_size  INTEGER NOT NULL,
    batch_count INTEGER NOT NULL DEFAULT 0,
    requested   INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    executions  INTEGER NOT NULL DEFAULT 1,
    summary     JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    CHECK (start_date <= end_date),
    CHECK (interval IN ('1h', '1d')),
    CHECK (batch_size > 0)
);
CREATE INDEX IF NOT EXISTS idx_backfill_run_created ON backfill_run (created_at DESC);

-- Per-batch state that outlives one invocation: the consecutive 429 count drives the backoff.
CREATE TABLE IF NOT EXISTS backfill_batch (
    run_id                  VARCHAR(64) NOT NULL REFERENCES backfill_run (run_id) ON DELETE CASCADE,
    batch                   INTEGER NOT NULL,
    consecutive_rate_limits INTEGER NOT NULL DEFAULT 0,
    invocations             INTEGER NOT NULL DEFAULT 0,
    last_status             VARCHAR(16),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, batch)
);
