-- Prices as double precision, like the original's `stock_price_history`: NUMERIC(14,4) rounded
-- split-adjusted prices below a dollar (0.1234 for 0.12344999…), so that this system's rows
-- disagreed with the original's for the same bar.
--
-- Only this project's own columns are retyped: a `stock_price_history` that an earlier V1
-- created, recognised by exactly its definition (all four prices NUMERIC(14,4), and `created_at`
-- defaulting to now(), which the original never had). A user's own table with other types is
-- never retyped here; `backfill migrate` reports its price columns that are not double precision.
DO $$
DECLARE
    own_numeric INTEGER;
    own_default BOOLEAN;
BEGIN
    SELECT count(*) INTO own_numeric
      FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = 'stock_price_history'
       AND column_name IN ('open_price', 'high_price', 'low_price', 'close_price')
       AND data_type = 'numeric' AND numeric_precision = 14 AND numeric_scale = 4;
    SELECT EXISTS (
        SELECT 1 FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'stock_price_history'
           AND column_name = 'created_at' AND column_default = 'now()'
    ) INTO own_default;
    IF own_numeric = 4 AND own_default THEN
        ALTER TABLE stock_price_history
            ALTER COLUMN open_price  TYPE DOUBLE PRECISION,
            ALTER COLUMN high_price  TYPE DOUBLE PRECISION,
            ALTER COLUMN low_price   TYPE DOUBLE PRECISION,
            ALTER COLUMN close_price TYPE DOUBLE PRECISION;
    END IF;
END
$$;
