//! The three handlers against a real PostgreSQL (a fresh database per test) and market-sim over
//! loopback HTTP. One behaviour per test.

mod bar_keys;
mod common;
mod fake_provider;
mod fetch_batch;
mod finalize_run;
mod grouped_daily;
mod original_database;
mod select_tickers;
