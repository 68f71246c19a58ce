//! Just enough of Linux's /proc to tell whether processes are still running.

use std::fs;

/// `(state, process group)` of a process, from `/proc/<pid>/stat`; `None` when it is gone.
fn stat(pid: &str) -> Option<(String, i64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields follow the command name, which is in parentheses and may contain anything.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_string();
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn running(state: &str) -> bool {
    // Z: exited but not yet reaped; X: dead.
    !matches!(state, "Z" | "X")
}

/// Whether the process exists and has not exited (a zombie counts as exited).
pub(crate) fn is_running(pid: u32) -> bool {
    stat(&pid.to_string()).is_some_and(|(state, _)| running(&state))
}

/// Whether any process of the group exists and has not exited.
pub(crate) fn group_is_running(pgid: i64) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.bytes().all(|b| b.is_ascii_digit())
            && stat(&name).is_some_and(|(state, pgrp)| pgrp == pgid && running(&state))
    })
}
