//! Applies the embedded migrations to `DATABASE_URL` (or the database behind
//! `DATABASE_SECRET_ARN`). Idempotent: `make migrate-up` runs it.

use shared::handler::App;
use shared::{db, telemetry, BackfillError};

#[tokio::main]
async fn main() -> Result<(), BackfillError> {
    telemetry::init();
    let app = App::from_env().await?;
    let mut client = app.db().await?;
    let applied = db::migrate::run(&mut client).await?;
    if applied.is_empty() {
        println!("database schema is up to date");
    } else {
        println!("applied migrations {applied:?}");
    }
    Ok(())
}
