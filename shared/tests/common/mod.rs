//! Helpers shared by the integration tests of this folder (each test file that needs them says
//! `mod common;`; the handler tests have their own, in handlers/common.rs).

#![allow(dead_code)] // each test file uses its own part

pub mod provider;
