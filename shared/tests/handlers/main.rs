//! The three handlers against a real PostgreSQL (a fresh database per test) and market-sim over
//! loopback HTTP. One behaviour per test.

mod common;
mod fetch_batch;
mod finalize_run;
mod select_tickers;
