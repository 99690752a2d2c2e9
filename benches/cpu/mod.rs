//! CPU time of this process and of a local Redis server, for the benches
//! that report CPU per operation beside their rates (on 2 vCPUs the rates
//! move with where tokio places the tasks; the CPU per operation much
//! less).

#![allow(dead_code)]

/// CPU time used so far by every thread of a process (`/proc/<pid>/task/*/
/// schedstat`, nanoseconds); `None` where that is not readable.
pub(crate) fn cpu_ns(pid: &str) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// The local Redis server's process id, once [`watch_redis`] found it.
static REDIS_PID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// Reads the Redis server's process id from its `INFO server` text, for
/// [`now`], when that process is visible here as `redis-server`.
pub(crate) fn watch_redis(info: &str) {
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:")?.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "redis-server")
        });
    let _ = REDIS_PID.set(pid);
}

/// CPU time of this process and of the Redis server (nanoseconds, where
/// readable).
pub(crate) fn now() -> (Option<u64>, Option<u64>) {
    let redis = REDIS_PID
        .get()
        .copied()
        .flatten()
        .and_then(|pid| cpu_ns(&pid.to_string()));
    (cpu_ns("self"), redis)
}

/// `after - before` when both were read.
pub(crate) fn used(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

/// `total + part` when both were read.
pub(crate) fn sum(total: Option<u64>, part: Option<u64>) -> Option<u64> {
    Some(total? + part?)
}

/// Nanoseconds over `ops` operations as microseconds per operation, or
/// `n/a`.
pub(crate) fn per_op(ns: Option<u64>, ops: u64) -> String {
    match ns {
        Some(ns) if ops > 0 => format!("{:.2}", ns as f64 / 1000.0 / ops as f64),
        _ => "n/a".to_owned(),
    }
}
