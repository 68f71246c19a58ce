//! A stand-in Lambda function for the local stack's own tests (never deployed): it asks a test's
//! HTTP server what to do with each invocation, then does it.
//!
//! `POST $RELAY_URL` with `{"function", "request_id", "pid", "payload"}`; the answer is one
//! instruction, applied in this order:
//!
//! - `"sleep_ms": N` — first wait N ms (a slow or hanging function);
//! - `"exit": CODE` — the process exits (a crash);
//! - `"error": {"type": T, "message": M}` — a function error with errorType T;
//! - `"respond": VALUE` — the function's response.
//!
//! It runs on `lambda_runtime`, like the real functions, so it speaks the Runtime API the same way.

use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Default, Deserialize)]
struct Instruction {
    #[serde(default)]
    sleep_ms: Option<u64>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    error: Option<ErrorInstruction>,
    #[serde(default)]
    respond: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ErrorInstruction {
    #[serde(rename = "type")]
    error_type: String,
    message: String,
}

fn diagnostic(error_type: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_string(),
        error_message: message.into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let relay = std::env::var("RELAY_URL").map_err(|_| "RELAY_URL is not set")?;
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let http = reqwest::Client::new();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (relay, function, http) = (relay.clone(), function.clone(), http.clone());
        async move {
            let asked = json!({
                "function": function,
                "request_id": event.context.request_id,
                "pid": std::process::id(),
                "payload": event.payload,
            });
            let instruction: Instruction = http
                .post(&relay)
                .json(&asked)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| diagnostic("RelayUnreachable", e.to_string()))?
                .json()
                .await
                .map_err(|e| diagnostic("RelayUnreachable", e.to_string()))?;
            if let Some(ms) = instruction.sleep_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if let Some(code) = instruction.exit {
                std::process::exit(code);
            }
            if let Some(error) = instruction.error {
                return Err(diagnostic(&error.error_type, error.message));
            }
            Ok::<Value, Diagnostic>(instruction.respond.unwrap_or(Value::Null))
        }
    }))
    .await
}
