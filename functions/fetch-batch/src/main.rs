//! `fetch-batch` Lambda: wiring only; the logic lives in `shared::handler::fetch_batch`.

use lambda_runtime::{service_fn, Error};
use shared::{handler::App, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event| app.fetch_batch(event))).await
}
