//! Just enough of Linux's /proc to find a process's descendants and groups, and to tell whether
//! processes are still running.

use std::collections::BTreeSet;
use std::fs;

/// What [`process`](crate::process) needs of `/proc/<pid>/stat`.
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    /// Clock ticks after boot when the process started: with the pid, it names one process even
    /// after the pid is reused.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Z: exited but not yet reaped; X: dead.
    pub(crate) fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// `None` when the process is gone.
pub(crate) fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Field 22 of proc(5); `fields` is at field 6 now.
    let start_time = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        start_time,
    })
}

/// Whether `pid` exists and has not exited (a zombie has exited).
pub(crate) fn is_running(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.running())
}

fn all_processes() -> Vec<(i32, Stat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).map(|s| (pid, s)))
        .collect()
}

/// Every living descendant of `root`.
pub(crate) fn descendants(root: i32) -> BTreeSet<i32> {
    let processes = all_processes();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, s) in &processes {
            if s.ppid == parent && found.insert(*pid) {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Living processes in any of `groups`.
pub(crate) fn group_members(groups: &BTreeSet<i32>) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|(_, s)| groups.contains(&s.pgrp) && s.running())
        .map(|(pid, _)| pid)
        .collect()
}
