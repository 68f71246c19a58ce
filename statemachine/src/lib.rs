//! The `backfill` CLI: starts, resumes, follows and inspects backfill runs.
//!
//! - [`cli`]: the commands (clap), one module each
//! - [`executions`]: the Step Functions port ([`executions::Executions`]) and its AWS SDK adapter
//! - [`store`]: the database connection and the read queries the reports need
//! - [`error`]: the CLI's errors and their exit codes
//!
//! The binary (`src/main.rs`) only calls [`cli::main`].

pub mod cli;
pub mod error;
pub mod executions;
pub mod store;

pub use error::CliError;
