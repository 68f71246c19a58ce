//! `finalize-run` Lambda: wiring only; the logic lives in `shared::handler::finalize_run`.

use lambda_runtime::{service_fn, Error};
use shared::{handler::App, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event| app.finalize_run(event))).await
}
