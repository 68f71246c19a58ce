//! Embedded, idempotent migrations. Each file runs once, in order, inside one transaction guarded
//! by an advisory lock, so concurrent cold starts or CLI calls cannot apply a file twice.

use tokio_postgres::Client;

use crate::error::BackfillError;

/// `(version, name, sql)` in application order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "schema", include_str!("migrations/V1__schema.sql")),
    (
        2,
        "batch_errors",
        include_str!("migrations/V2__batch_errors.sql"),
    ),
    (
        3,
        "run_execution_name",
        include_str!("migrations/V3__run_execution_name.sql"),
    ),
    (
        4,
        "double_precision_prices",
        include_str!("migrations/V4__double_precision_prices.sql"),
    ),
    (
        5,
        "batch_progress_clock_and_run_lease",
        include_str!("migrations/V5__batch_progress_clock_and_run_lease.sql"),
    ),
    (
        6,
        "rate_budget",
        include_str!("migrations/V6__rate_budget.sql"),
    ),
    (
        7,
        "grouped_days",
        include_str!("migrations/V7__grouped_days.sql"),
    ),
];

/// An arbitrary constant shared by every process that migrates this database.
const MIGRATION_LOCK_KEY: i64 = 0x7072_6963_6562_6b66;

/// Applies every migration not yet recorded. Returns the versions applied by this call.
pub async fn run(client: &mut Client) -> Result<Vec<i32>, BackfillError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS backfill_schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM backfill_schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO backfill_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}

/// `stock_price_history` price columns that are not double precision, as `(column, type)`: a
/// user's own table that the migrations never retype (V4 retypes only this project's own
/// NUMERIC(14,4) columns). Prices are fetched as float64; such a column rounds or limits them.
pub async fn lossy_price_columns(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<(String, String)>, BackfillError> {
    let rows = client
        .query(
            "SELECT column_name::text,
                    CASE WHEN data_type = 'numeric' AND numeric_precision IS NOT NULL
                         THEN format('numeric(%s,%s)', numeric_precision, numeric_scale)
                         ELSE data_type::text END
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = 'stock_price_history'
                AND column_name IN ('open_price', 'high_price', 'low_price', 'close_price')
                AND data_type <> 'double precision'
           ORDER BY ordinal_position",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
