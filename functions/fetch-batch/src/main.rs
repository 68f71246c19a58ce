//! `fetch-batch` Lambda: wiring only; the logic lives in `shared::handler::fetch_batch`.
//! The runtime hands over a [`Payload`], so that a payload that is not JSON is `InvalidInput`
//! like every other bad input (see `shared::handler::payload`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::handler::payload::{json_event, Payload};
use shared::{handler::App, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        app.fetch_batch(json_event(event)?).await
    }))
    .await
}
