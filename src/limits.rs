//! The system limits the server runs under, checked at start: open files (one per connection),
//! locked memory (io_uring's registered buffers), and the listen backlog the kernel allows
//! (`net.core.somaxconn`). Too little locked memory fails the start; the others log a warning
//! with the fix when they cap what the configuration asks for.

use crate::config::Config;

/// glommio refuses to start below this locked-memory limit.
pub const MIN_MEMLOCK_BYTES: u64 = 512 * 1024;
/// The listen backlog each shard asks for.
pub const LISTEN_BACKLOG: u64 = 4096;
/// Descriptors the process needs besides its connections (listeners, rings, eventfds, Redis,
/// webhooks, logs).
const RESERVED_FILES: u64 = 256;
/// Below this many open files, a node with no connection limit of its own is warned about.
const COMFORTABLE_OPEN_FILES: u64 = 65_536;

/// What the process may use, as read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemLimits {
    /// The open-files soft limit, after raising it to the hard one.
    pub open_files: u64,
    /// The locked-memory limit in bytes; `None` = unlimited.
    pub memlock: Option<u64>,
    /// `net.core.somaxconn`, if readable.
    pub somaxconn: Option<u64>,
}

/// What the configuration asks of the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Executors (shards and the API core), each with its registered I/O memory.
    pub executors: usize,
    pub io_memory_bytes: u64,
    /// Connections the configuration allows at most, if it caps them.
    pub connections: Option<u64>,
}

impl Planned {
    pub fn of(config: &Config, shards: usize, io_memory_bytes: usize) -> Planned {
        let per_shard = config.server.max_connections_per_shard as u64;
        let per_apps: Option<u64> = config
            .apps
            .iter()
            .map(|a| (a.max_connections > 0).then_some(a.max_connections as u64))
            .sum();
        let by_shards = (per_shard > 0).then(|| per_shard.saturating_mul(shards as u64));
        Planned {
            executors: shards + 1,
            io_memory_bytes: io_memory_bytes as u64,
            connections: match (by_shards, per_apps) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

impl SystemLimits {
    /// Reads the limits, raising the open-files soft limit to the hard one first: the soft
    /// limit (often 1024) is only a default.
    pub fn read_and_raise() -> SystemLimits {
        SystemLimits {
            open_files: raise_open_files(),
            memlock: rlimit(libc::RLIMIT_MEMLOCK).and_then(|l| l.0),
            somaxconn: std::fs::read_to_string("/proc/sys/net/core/somaxconn")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        }
    }

    /// The error that stops the start: io_uring cannot work with this little locked memory.
    pub fn fatal(&self) -> Option<String> {
        let memlock = self.memlock?;
        (memlock < MIN_MEMLOCK_BYTES).then(|| {
            format!(
                "locked-memory limit is {} KiB; io_uring (glommio) needs at least {} KiB: raise it \
                 with `ulimit -l 8192` or LimitMEMLOCK=8M in the systemd unit",
                memlock / 1024,
                MIN_MEMLOCK_BYTES / 1024
            )
        })
    }

    /// One line per limit that caps the planned scale, each with its fix.
    pub fn warnings(&self, planned: &Planned) -> Vec<String> {
        let mut out = Vec::new();
        let usable = self.open_files.saturating_sub(RESERVED_FILES);
        let fix_files = "raise it with LimitNOFILE=1048576 in the systemd unit or `ulimit -n \
                         1048576` (above 1048576 also raise fs.nr_open)";
        match planned.connections {
            Some(wanted) if usable < wanted => out.push(format!(
                "open files: the limit is {}, so this node serves at most ~{usable} connections \
                 but the configuration allows {wanted}: {fix_files}",
                self.open_files
            )),
            None if self.open_files < COMFORTABLE_OPEN_FILES => out.push(format!(
                "open files: the limit is {}, so this node serves at most ~{usable} connections: \
                 {fix_files}",
                self.open_files
            )),
            _ => {}
        }
        if let Some(memlock) = self.memlock {
            let wanted = planned
                .io_memory_bytes
                .saturating_mul(planned.executors as u64);
            if memlock < wanted {
                out.push(format!(
                    "locked memory: the limit is {} KiB and {} executors register {} KiB: raise \
                     it with LimitMEMLOCK=8M in the systemd unit or `ulimit -l 8192`",
                    memlock / 1024,
                    planned.executors,
                    wanted / 1024
                ));
            }
        }
        if let Some(somaxconn) = self.somaxconn.filter(|&s| s < LISTEN_BACKLOG) {
            out.push(format!(
                "net.core.somaxconn is {somaxconn}: at most that many connections wait to be \
                 accepted per shard, and a connect burst beyond it is dropped and retried by the \
                 clients' TCP: `sysctl -w net.core.somaxconn={LISTEN_BACKLOG}`"
            ));
        }
        out
    }
}

/// (soft, hard) of a resource limit; `None` in either place = unlimited.
fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(Option<u64>, Option<u64>)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return None;
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Some((finite(lim.rlim_cur), finite(lim.rlim_max)))
}

/// Raises the open-files soft limit to the hard one; returns the soft limit in force.
fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass; setrlimit reads it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(open_files: u64, memlock: Option<u64>, somaxconn: u64) -> SystemLimits {
        SystemLimits {
            open_files,
            memlock,
            somaxconn: Some(somaxconn),
        }
    }

    fn planned(connections: Option<u64>) -> Planned {
        Planned {
            executors: 3,
            io_memory_bytes: 64 * 1024,
            connections,
        }
    }

    #[test]
    fn generous_limits_warn_about_nothing() {
        let l = limits(1 << 20, None, 4096);
        assert!(l.warnings(&planned(None)).is_empty());
        assert!(l.warnings(&planned(Some(500_000))).is_empty());
        assert!(l.fatal().is_none());
    }

    #[test]
    fn open_files_below_the_configured_connections_warn_with_the_fix() {
        let w = limits(20_000, None, 4096).warnings(&planned(Some(100_000)));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("100000") && w[0].contains("LimitNOFILE"),
            "{w:?}"
        );
        // Enough for the configured cap: no warning, though the limit is modest.
        assert!(
            limits(20_000, None, 4096)
                .warnings(&planned(Some(10_000)))
                .is_empty()
        );
        // No cap configured: a small limit is the cap, and is reported.
        let w = limits(1024, None, 4096).warnings(&planned(None));
        assert!(w[0].contains("at most ~768"), "{w:?}");
    }

    #[test]
    fn small_somaxconn_and_memlock_warn_and_tiny_memlock_is_fatal() {
        let w = limits(1 << 20, Some(128 * 1024), 128).warnings(&planned(None));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|l| l.contains("somaxconn=4096")), "{w:?}");
        assert!(w.iter().any(|l| l.contains("LimitMEMLOCK")), "{w:?}");
        assert!(limits(1 << 20, Some(64 * 1024), 4096).fatal().is_some());
        assert!(limits(1 << 20, Some(8 << 20), 4096).fatal().is_none());
    }

    #[test]
    fn the_planned_cap_is_the_smaller_of_shards_and_apps() {
        let mut config = Config::parse(None, Vec::new()).unwrap();
        assert_eq!(Planned::of(&config, 2, 65536).connections, None);
        config.server.max_connections_per_shard = 1000;
        assert_eq!(Planned::of(&config, 2, 65536).connections, Some(2000));
        config.apps[0].max_connections = 500;
        assert_eq!(Planned::of(&config, 2, 65536).connections, Some(500));
    }
}
