//! `backfill`: start, resume, follow and inspect backfill runs. See `backfill --help`.

fn main() -> std::process::ExitCode {
    statemachine::cli::main()
}
