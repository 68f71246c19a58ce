//! price-backfill's domain crate: everything the Lambda functions, the CLI and the tests share.
//!
//! - [`model`]: parse-don't-validate newtypes (`Symbol`, `DateRange`, `RunId`, `Interval`, …)
//! - [`contract`]: the JSON payloads between the state machine and the functions
//! - [`error`]: the error names the state machine matches
//! - [`env`](mod@env), [`config`], [`secrets`], [`telemetry`]: process set-up
//! - [`db`]: pool, migrations and one module of SQL per table
//! - [`provider`]: the price API port and its Yahoo and Polygon adapters
//! - [`request`], [`run_close`]: a new run's validated request, and closing a run
//! - [`handler`]: the three functions' logic

pub mod config;
pub mod contract;
pub mod db;
pub mod env;
pub mod error;
pub mod handler;
pub mod model;
pub mod provider;
pub mod request;
pub mod run_close;
pub mod secrets;
pub mod telemetry;

pub use error::BackfillError;
