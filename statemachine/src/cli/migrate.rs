//! `backfill migrate`: the embedded migrations, applied in one transaction under an advisory lock.

use super::session::Session;
use crate::error::{exit, CliError};

pub async fn run(session: &mut Session<'_>) -> Result<u8, CliError> {
    let mut client = session.connect().await?;
    let applied = shared::db::migrate::run(&mut client).await?;
    if applied.is_empty() {
        writeln!(session.out(), "database schema is up to date")?;
    } else {
        writeln!(session.out(), "applied migrations {applied:?}")?;
    }
    // Never retyped silently: say so, and what it costs, so the owner can decide.
    for (column, data_type) in shared::db::migrate::lossy_price_columns(&client).await? {
        eprintln!(
            "warning: stock_price_history.{column} is {data_type}, not double precision: prices \
             are stored rounded to what it holds; left as it is (ALTER it to double precision to \
             keep every digit the provider sends)"
        );
    }
    Ok(exit::OK)
}
