//! Helpers for the workspace's tests.
//!
//! - [`pg`]: a fresh, empty PostgreSQL database per test ([`pg::TestDb`]), on the server named by
//!   `TEST_DATABASE_URL` / `DATABASE_URL`, or else on a throwaway cluster that this test process
//!   starts on first use and that disappears with it.
//! - [`cluster`]: a PostgreSQL cluster of one test's own, which it can stop and start again
//!   (database outages without disturbing other tests).
//! - [`original`]: the original job's schema and rows, and mentions written the way it writes them.
//! - [`wait`]: wait on a condition with a deadline instead of sleeping.
//! - [`process`]: run a child in its own process group and stop the whole group on drop.
//!
//! This crate must never depend on `shared` (which dev-depends on it): tests apply the migrations
//! themselves with `shared::db::migrate::run(&mut db.client().await)`.

pub mod cluster;
pub mod original;
pub mod pg;
pub mod process;
mod procfs;
pub mod wait;

pub use pg::TestDb;
