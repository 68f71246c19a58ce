//! `pg-down <dir>`: stops the cluster `pg-up <dir>` started and removes it and `<dir>`'s state.
//! Idempotent: nothing to stop is not an error. See `test_support::pg_up` (scripts/pg-down runs
//! this).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state] = args.as_slice() else {
        eprintln!("usage: pg-down <dir>");
        return ExitCode::from(2);
    };
    match test_support::pg_up::down(Path::new(state), &mut |line| eprintln!("pg-down: {line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pg-down: error: {message}");
            ExitCode::FAILURE
        }
    }
}
