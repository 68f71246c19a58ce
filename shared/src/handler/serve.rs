//! What every function's `main` does, once: telemetry, one [`App`] for the execution
//! environment (built before the first invocation, shared by all of them), and the runtime loop,
//! with a payload that is not JSON answered as `InvalidInput` (see [`super::payload`]).

use std::future::Future;
use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use super::payload::{json_event, Payload};
use super::App;
use crate::error::BackfillError;
use crate::telemetry;

/// Serves invocations with `handle` until the runtime stops. An environment that cannot build
/// its [`App`] (configuration, secrets) fails at init, which Lambda reports as an init error.
pub async fn serve<H, F, O>(handle: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Arc<App>, LambdaEvent<Value>) -> F,
    F: Future<Output = Result<O, BackfillError>>,
    O: Serialize,
{
    telemetry::init();
    let app = Arc::new(App::from_env().await?);
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| {
        let app = Arc::clone(&app);
        async move { handle(app, json_event(event)?).await }
    }))
    .await
}
