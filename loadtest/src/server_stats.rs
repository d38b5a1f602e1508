//! The server's resident memory and CPU time, read from /proc.

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds a thread has run, from its `schedstat` (nanoseconds: the `stat` file's
/// 10 ms ticks are too coarse for a few percent of a core over a short run).
fn thread_seconds(task: &std::path::Path) -> Option<f64> {
    let stat = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// The server's threads, with their names.
fn threads(pid: u32) -> impl Iterator<Item = (std::path::PathBuf, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            (t.path(), name.trim().to_string())
        })
}

/// CPU seconds of the whole server process (its threads now running: the server's executor
/// threads live as long as it does).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let mut threads = threads(pid).peekable();
    threads.peek()?;
    Some(threads.filter_map(|(path, _)| thread_seconds(&path)).sum())
}

/// CPU seconds of the server's thread whose name starts with `prefix` (e.g. the API core).
pub fn thread_cpu_seconds(pid: u32, prefix: &str) -> Option<f64> {
    threads(pid)
        .find(|(_, name)| name.starts_with(prefix))
        .and_then(|(path, _)| thread_seconds(&path))
}
