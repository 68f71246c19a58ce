//! `pg-up <dir>`: starts (or finds running) a throwaway PostgreSQL cluster whose state is kept in
//! `<dir>`, and prints how to reach it (`export` lines, also in `<dir>/env`). Progress goes to
//! stderr. See `test_support::pg_up` (scripts/pg-up runs this).
//!
//! Exit codes: 0 running; 1 failed; 2 usage; 3 no PostgreSQL server binaries on this machine
//! (scripts/pg-up then runs `scripts/ensure-tools postgres` and tries again).

use std::path::Path;
use std::process::ExitCode;

use test_support::pg_up::{self, UpError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state] = args.as_slice() else {
        eprintln!("usage: pg-up <dir>");
        return ExitCode::from(2);
    };
    match pg_up::up(Path::new(state), &mut |line| eprintln!("pg-up: {line}")) {
        Ok(running) => {
            print!("{}", running.env);
            ExitCode::SUCCESS
        }
        Err(UpError::NoServerBinaries(message)) => {
            eprintln!("pg-up: {message}");
            ExitCode::from(3)
        }
        Err(UpError::Failed(message)) => {
            eprintln!("pg-up: error: {message}");
            ExitCode::FAILURE
        }
    }
}
