//! `fetch-batch` Lambda: wiring only. The logic lives in `shared::handler::fetch_batch`; the
//! runtime loop (telemetry, one `App` per environment, a payload that is not JSON answered as
//! `InvalidInput`) in `shared::handler::serve`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::handler::serve::serve(|app, event| async move { app.fetch_batch(event).await }).await
}
