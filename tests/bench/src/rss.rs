//! This process's resident memory, as the kernel counts it.
//!
//! Two readings of the peak: `VmHWM` in `/proc/self/status` and `getrusage(RUSAGE_SELF)
//! .ru_maxrss` (what `/usr/bin/time` reports as maximum resident set size). Both are high-water
//! marks that only ever grow, and neither counts child processes (the simulator, PostgreSQL).
//! They differ in one way: on `exec` the kernel carries the launching process's high-water mark
//! into `ru_maxrss` (a binary started by `cargo run` reads about 90 MiB before doing anything),
//! while `VmHWM` is this program image's alone. `VmHWM` is therefore the figure; `ru_maxrss`
//! agrees with it when the launcher is small (a shell).

use std::io;

/// One reading, in KiB (Linux reports both in KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// Peak resident set size so far: `VmHWM`.
    pub peak_kib: u64,
    /// Peak resident set size so far, launcher included: `getrusage(RUSAGE_SELF).ru_maxrss`.
    pub maxrss_kib: u64,
    /// Resident set size now: `VmRSS`.
    pub now_kib: u64,
}

impl Rss {
    pub fn now() -> io::Result<Rss> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let field = |name: &str| {
            status_kib(&status, name).ok_or_else(|| {
                io::Error::other(format!("/proc/self/status has no {name} line in kB"))
            })
        };
        Ok(Rss {
            peak_kib: field("VmHWM")?,
            maxrss_kib: max_rss_kib()?,
            now_kib: field("VmRSS")?,
        })
    }
}

fn max_rss_kib() -> io::Result<u64> {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` into the struct it is given, nothing else.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    u64::try_from(usage.ru_maxrss).map_err(|_| io::Error::other("negative ru_maxrss"))
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`, in KiB.
pub(crate) fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// KiB as MiB (the unit Lambda's memory sizes are given in, "128 MB" being 128 MiB).
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tbench\nVmHWM:\t   65536 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(65536));
        assert_eq!(status_kib(status, "VmRSS"), Some(1024));
        assert_eq!(status_kib(status, "Threads"), None);
        assert_eq!(status_kib(status, "VmPeak"), None);
    }

    #[test]
    fn both_peaks_are_read_and_cover_the_current_size() {
        let rss = Rss::now().unwrap();
        assert!(rss.now_kib > 0);
        assert!(rss.peak_kib >= rss.now_kib, "{rss:?}");
        // The kernel's per-CPU RSS counters are approximate: getrusage and /proc may differ
        // by a few pages.
        assert!(rss.maxrss_kib > 0, "{rss:?}");
    }
}
