//! The workspace's test plumbing, in one place.
//!
//! - [`pg`]: a fresh, empty PostgreSQL database per test ([`pg::TestDb`]), on the server named by
//!   `TEST_DATABASE_URL` / `DATABASE_URL`, or else on a throwaway cluster that this test process
//!   starts on first use and that disappears with it; [`pg::column`] reads a query's first column.
//! - [`cluster`]: a PostgreSQL cluster of one test's own, which it can stop and start again
//!   (database outages without disturbing other tests).
//! - [`pg_up`]: a throwaway cluster that outlives its starter, for scripts (`pg-up` / `pg-down`,
//!   the binaries behind scripts/pg-up and scripts/pg-down) and `local-stack up`.
//! - [`original`]: the original job's schema and rows, and mentions written the way it writes them
//!   ([`original::seed_mentions`]).
//! - [`moto`] (feature `moto`, on by default): a `moto_server` of a test's own, and the SDK
//!   configuration that reaches it.
//! - [`wait`]: wait on a condition with a deadline instead of sleeping.
//! - [`process`]: children that take their whole process tree with them (process groups,
//!   descendants), children tied to this process's life, and recognising a process later.
//! - [`net`]: free ports on 127.0.0.1.
//! - [`shell`]: `export` lines for env files.
//!
//! This crate must never depend on `shared` (which dev-depends on it): tests apply the migrations
//! themselves with `shared::db::migrate::run(&mut db.client().await)`.

pub mod cluster;
#[cfg(feature = "moto")]
pub mod moto;
pub mod net;
pub mod original;
pub mod pg;
mod pg_server;
pub mod pg_up;
pub mod process;
mod procfs;
pub mod shell;
pub mod wait;

pub use pg::TestDb;
