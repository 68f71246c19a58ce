-- The original job's five tables, created only where absent so that an existing database keeps
-- its definitions and rows; then the columns and tables this system adds.

CREATE TABLE IF NOT EXISTS ticker (
    symbol      VARCHAR(20) PRIMARY KEY,
    name        VARCHAR(255),
    exchange    VARCHAR(50),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS article (
    id           BIGSERIAL PRIMARY KEY,
    title        TEXT,
    url          TEXT,
    published_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS article_ticker (
    id          BIGSERIAL PRIMARY KEY,
    article_id  BIGINT NOT NULL REFERENCES article (id) ON DELETE CASCADE,
    ticker      VARCHAR(20) NOT NULL REFERENCES ticker (symbol) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (article_id, ticker)
);
CREATE INDEX IF NOT EXISTS idx_article_ticker_ticker ON article_ticker (ticker);

CREATE TABLE IF NOT EXISTS stock_price_history (
    id          BIGSERIAL PRIMARY KEY,
    symbol      VARCHAR(20) NOT NULL,
    date        TIMESTAMPTZ NOT NULL,
    open_price  NUMERIC(14, 4),
    high_price  NUMERIC(14, 4),
    low_price   NUMERIC(14, 4),
    close_price NUMERIC(14, 4) NOT NULL,
    volume      BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (symbol, date)
);
-- Set when a refresh changed a stored bar; NULL for bars never changed.
ALTER TABLE stock_price_history ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ;

CREATE TABLE IF NOT EXISTS backfill_progress (
    id               BIGSERIAL PRIMARY KEY,
    run_id           VARCHAR(64) NOT NULL,
    symbol           VARCHAR(20) NOT NULL,
    status           VARCHAR(20) NOT NULL DEFAULT 'pending',
    records_inserted INTEGER DEFAULT 0,
    error_message    TEXT,
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    UNIQUE (run_id, symbol)
);
CREATE INDEX IF NOT EXISTS idx_backfill_progress_run_status ON backfill_progress (run_id, status);

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
