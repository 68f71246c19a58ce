-- One request budget per provider and API key, shared by every fetch-batch instance of every run
-- (issue 9): the provider limits the key (or the caller's IP), not one process. A generic cell
-- rate algorithm with a burst of one: `next_slot_at` is the earliest time the next request may be
-- sent; a reservation takes max(next_slot_at, paused_until, now) and moves next_slot_at one
-- interval past it, in one short statement (the row is locked only for that statement).
-- `paused_until` is set by a 429: nobody sends before the provider's Retry-After.
-- `budget` names the provider and, for keyed providers, a hash of the key (never the key).
CREATE TABLE IF NOT EXISTS backfill_rate_budget (
    budget        TEXT PRIMARY KEY,
    next_slot_at  TIMESTAMPTZ NOT NULL,
    paused_until  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    last_slot_at  TIMESTAMPTZ,
    granted       BIGINT NOT NULL DEFAULT 0,
    denied        BIGINT NOT NULL DEFAULT 0,
    paused        BIGINT NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
