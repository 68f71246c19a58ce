//! The local stack: the backfill state machine running on real components only.
//!
//! - **moto** (`moto_server` from `.venv`) with state machine execution enabled: the Step Functions
//!   interpreter. The state machine is created from `statemachine/backfill.asl.json`, rendered by
//!   `scripts/render-asl` exactly as `make lint` checks it.
//! - **the Lambda Invoke adapter** ([`adapter`]): moto's interpreter calls Lambda at
//!   `localhost:$MOTO_PORT`, which is the adapter; it answers as Lambda's Invoke API does and
//!   proxies everything else to moto. It is also the stack's `AWS_ENDPOINT_URL`.
//! - **the function host** ([`runtime`], inside the adapter): the real function binaries (built
//!   first), run as Lambda runs them: instances on demand up to a concurrency, the Lambda Runtime
//!   API they poll, a killed process's `Runtime.ExitError` and a timeout's `Sandbox.Timedout`
//!   answered at once, a fresh instance for the next invocation.
//! - **PostgreSQL**: a fresh database on the test process's throwaway cluster, or a given URL.
//! - **market-sim** (the binary) for the price APIs.
//!
//! Tests use [`LocalStack::start`]; `local-stack up|down|env` (the binary) runs the same stack
//! detached for scripts and the demo.
//!
//! ```no_run
//! # async fn demo() -> local_stack::Result<()> {
//! use std::time::Duration;
//! use local_stack::{unique_name, LocalStack, LocalStackOptions};
//!
//! let stack = LocalStack::start(LocalStackOptions::default()).await?;
//! let input = serde_json::json!({"symbols": ["AAPL"], "start_date": "2026-03-09", "end_date": "2026-03-11"});
//! let arn = stack.start_execution(&input, &unique_name("demo")).await?;
//! let outcome = stack.wait_for_execution(&arn, Duration::from_secs(60)).await?;
//! println!("{:?} {:?}", outcome.status, outcome.output);
//! # Ok(()) }
//! ```

pub mod adapter;
mod error;
pub mod process;
pub mod runtime;
mod stack;
pub mod workspace;

pub use adapter::Invocation;
pub use aws_sdk_sfn;
pub use error::{Error, Result};
pub use runtime::{FunctionSpec, InstanceInfo, InstanceState};
pub use stack::{
    unique_name, AdapterMode, ExecutionHistory, ExecutionOutcome, FunctionTimeouts, Iteration,
    LocalStack, LocalStackOptions, MapRunSummary, ACCESS_KEY_ID, ACCOUNT_ID, REGION, ROLE_ARN,
    SECRET_ACCESS_KEY,
};
pub use workspace::MapMode;
