//! `backfill migrate`: the embedded migrations, applied in one transaction under an advisory lock.

use crate::error::{exit, CliError};
use crate::store;

pub async fn run() -> Result<u8, CliError> {
    let mut client = store::connect_from_env().await?;
    let applied = shared::db::migrate::run(&mut client).await?;
    if applied.is_empty() {
        println!("database schema is up to date");
    } else {
        println!("applied migrations {applied:?}");
    }
    Ok(exit::OK)
}
