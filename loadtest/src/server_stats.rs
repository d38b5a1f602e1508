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

/// User plus system CPU seconds from a `/proc/…/stat` file (clock ticks of 1/100 s).
fn stat_cpu_seconds(path: std::path::PathBuf) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU seconds of the whole server process.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(format!("/proc/{pid}/stat").into())
}

/// CPU seconds of the server's thread whose name starts with `prefix` (e.g. the API core).
pub fn thread_cpu_seconds(pid: u32, prefix: &str) -> Option<f64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim().starts_with(prefix))
        })
        .and_then(|t| stat_cpu_seconds(t.path().join("stat")))
}
