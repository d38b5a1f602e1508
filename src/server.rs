//! Starts the executors, wires the queues between them, and runs until shutdown.

use crate::api::cluster::RedisNode;
use crate::api::{self, ApiSetup};
use crate::app::{Apps, LiveApps};
use crate::bus::ShardQueue;
use crate::config::{ClusterConfig, Config, TlsConfig};
use crate::limits::{Planned, SystemLimits};
use crate::metrics::Metrics;
use crate::placement;
use crate::reload::Reloader;
use crate::shard::{self, ShardSetup};
use crate::tls::{self, Certificates};
use glommio::{LocalExecutorBuilder, Placement};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Registered I/O memory per executor; ringcast does no DMA file I/O, so the minimum.
pub const IO_MEMORY_BYTES: usize = 64 * 1024;
/// How often a busy executor stops running tasks to look at I/O and at messages from other
/// cores. glommio's default (100 ms) lets a broadcast wait that long behind busy sessions;
/// `benches/cross_core_hop.rs` measures the difference.
pub const PREEMPT_TIMER: Duration = Duration::from_micros(250);

/// An executor as ringcast runs them: pinned, minimal I/O memory, prompt cross-core wakes.
fn executor(name: &str, cpu: usize) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(IO_MEMORY_BYTES)
        .preempt_timer(PREEMPT_TIMER)
}

#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that nothing else listens on `addr` and resolves port 0 to a free port. SO_REUSEPORT
/// would otherwise let a second ringcast (or anything of the same user) silently share the
/// port and split the connections; a plain bind fails on any socket already there.
fn claim_port(addr: SocketAddr) -> Result<SocketAddr, StartError> {
    let probe = std::net::TcpListener::bind(addr)
        .map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    probe.local_addr().map_err(|e| StartError(e.to_string()))
}

/// Binds every shard's listener up front: the first picks the port (0 = any free one), the
/// rest join it with SO_REUSEPORT. A bind error fails the start with one line.
fn bind_shards(
    ip: std::net::IpAddr,
    port: u16,
    shards: usize,
) -> Result<(SocketAddr, Vec<std::net::TcpListener>), StartError> {
    let mut addr = claim_port(SocketAddr::new(ip, port))?;
    let mut listeners = Vec::with_capacity(shards);
    for _ in 0..shards {
        let l =
            shard::bind(addr).map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
        addr = l.local_addr().map_err(|e| StartError(e.to_string()))?;
        listeners.push(l);
    }
    Ok((addr, listeners))
}

/// The metrics port, bound here too so a port in use fails the start with one line.
fn bind_metrics(
    ip: std::net::IpAddr,
    port: u16,
) -> Result<Option<std::net::TcpListener>, StartError> {
    if port == 0 {
        return Ok(None);
    }
    let at = SocketAddr::new(ip, port);
    let l = std::net::TcpListener::bind(at)
        .map_err(|e| StartError(format!("cannot listen on {at} (metrics_port): {e}")))?;
    let bound = l.local_addr().map_err(|e| StartError(e.to_string()))?;
    log::info!("metrics on http://{bound}/metrics");
    Ok(Some(l))
}

/// Runs the server until SIGTERM/SIGINT and a graceful shutdown; `path` is the configuration
/// file SIGHUP re-reads.
pub fn run(config: Config, path: Option<PathBuf>) -> Result<(), StartError> {
    let limits = SystemLimits::read_and_raise();
    if let Some(fatal) = limits.fatal() {
        return Err(StartError(fatal));
    }
    let ip: std::net::IpAddr = config
        .server
        .host
        .parse()
        .map_err(|_| StartError(format!("invalid host {}", config.server.host)))?;
    let plan = placement::plan(&placement::allowed_cpus(), config.server.shards);
    log::info!("open files: at most {} (the hard limit)", limits.open_files);
    let planned = Planned::of(&config, plan.shard_cpus.len(), IO_MEMORY_BYTES);
    for warning in limits.warnings(&planned) {
        log::warn!("{warning}");
    }
    let apps = Apps::new(&config.apps);
    let live_apps = LiveApps::new(apps.clone());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| StartError(format!("signal handler: {e}")))?;
    }
    let tls = start_tls(config.server.tls.as_ref())?;
    let certs = tls.as_ref().map(|t| t.certs.clone());
    reload_on_sighup(Reloader::new(
        path,
        config.clone(),
        certs,
        live_apps.clone(),
    ))?;
    let shards = plan.shard_cpus.len();
    let (addr, public) = bind_shards(ip, config.server.port, shards)?;
    let mut listeners: Vec<Vec<shard::Listener>> = public
        .into_iter()
        .map(|socket| {
            let tls = tls.as_ref().map(|t| t.config.clone());
            vec![shard::Listener { socket, tls }]
        })
        .collect();
    let plain_port = config.server.tls.as_ref().map_or(0, |t| t.plain_port);
    if tls.is_some() && plain_port != 0 {
        let (plain_addr, plain) = bind_shards(ip, plain_port, shards)?;
        for (own, socket) in listeners.iter_mut().zip(plain) {
            own.push(shard::Listener { socket, tls: None });
        }
        log::info!("plain (no TLS) listener on {plain_addr} beside the TLS one");
    }
    let metrics_listener = bind_metrics(ip, config.server.metrics_port)?;
    let metrics = Metrics::new(plan.shard_cpus.len());

    let mut to_shards = Vec::new();
    let mut from_shards = Vec::new();
    let mut shard_handles = Vec::new();
    for (id, (cpu, listeners)) in plan.shard_cpus.iter().zip(listeners).enumerate() {
        let queue = ShardQueue::new(id, &metrics);
        to_shards.push(queue.to_shard);
        from_shards.push(queue.from_shard);
        let setup = ShardSetup {
            id,
            apps: live_apps.clone(),
            config: config.server.clone(),
            listeners,
            from_api: queue.from_api,
            to_api: queue.to_api,
            metrics: metrics.clone(),
            clustered: config.cluster.enabled(),
            http_share: (config.server.max_http_connections / plan.shard_cpus.len().max(1)).max(1),
            connects_share: share(
                config.server.max_connects_per_ip_per_second,
                plan.shard_cpus.len(),
            ),
        };
        let handle = executor(&format!("shard-{id}"), *cpu)
            .spawn(move || shard::run(setup))
            .map_err(|e| StartError(format!("cannot start shard {id} on cpu {cpu}: {e}")))?;
        shard_handles.push(handle);
    }
    let hold = Duration::from_millis(config.server.webhook_hold_ms);
    let cluster = join_cluster(&config.cluster, hold, &metrics)?;
    let api_setup = ApiSetup {
        apps: live_apps.clone(),
        config: config.server.clone(),
        cluster,
        to_shards,
        from_shards,
        stop,
        metrics,
        metrics_listener,
    };
    let api = executor("api", plan.api_cpu)
        .spawn(move || {
            placement::no_wakeup_preemption();
            api::run(api_setup)
        })
        .map_err(|e| {
            StartError(format!(
                "cannot start the API core on cpu {}: {e}",
                plan.api_cpu
            ))
        })?;
    let pid_file = PidFile::write(&config.server.pid_file)?;
    log_started(addr, tls.is_some(), &plan, &apps);
    let _ = api.join();
    for h in shard_handles {
        let _ = h.join();
    }
    drop(pid_file);
    log::info!("ringcast stopped");
    Ok(())
}

/// `server.pid_file`: written once the server listens, removed when it stops.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn write(path: &str) -> Result<PidFile, StartError> {
        if path.is_empty() {
            return Ok(PidFile(None));
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| StartError(format!("server.pid_file: {path}: {e}")))?;
        Ok(PidFile(Some(PathBuf::from(path))))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// TLS as the shards use it, and the certificates SIGHUP reloads.
struct Tls {
    config: Arc<rustls::ServerConfig>,
    certs: Arc<Certificates>,
}

/// Whether `[server.tls]`'s files load, as at start (for `check-config`).
pub fn check_tls(config: Option<&TlsConfig>) -> Result<(), StartError> {
    if let Some(config) = config {
        Certificates::load(config.cert_file.as_ref(), config.key_file.as_ref())
            .map_err(|e| StartError(format!("server.tls: {e}")))?;
    }
    Ok(())
}

/// Loads `[server.tls]`'s certificate; a bad file fails the start with one line naming it.
fn start_tls(config: Option<&TlsConfig>) -> Result<Option<Tls>, StartError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let certs = Certificates::load(config.cert_file.as_ref(), config.key_file.as_ref())
        .map_err(|e| StartError(format!("server.tls: {e}")))?;
    let certs = Arc::new(certs);
    let server_config =
        tls::server_config(certs.clone()).map_err(|e| StartError(format!("server.tls: {e}")))?;
    Ok(Some(Tls {
        config: server_config,
        certs,
    }))
}

/// Re-reads the configuration on every SIGHUP (see [`crate::reload`]).
fn reload_on_sighup(mut reloader: Reloader) -> Result<(), StartError> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| StartError(format!("signal handler: {e}")))?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                reloader.reload();
            }
        })
        .map_err(|e| StartError(format!("reload thread: {e}")))?;
    Ok(())
}

/// A shard's share of a per-second limit `max` (0: none) split over `shards`, rounded up so
/// that no shard gets 0 (which would mean no limit).
fn share(max: u32, shards: usize) -> u32 {
    let shards = u32::try_from(shards.max(1)).unwrap_or(u32::MAX);
    max.div_ceil(shards)
}

/// With `cluster.redis_url`, the link to Redis (started here so a bad URL fails the start with
/// one line); without, nothing.
fn join_cluster(
    config: &ClusterConfig,
    webhook_hold: Duration,
    metrics: &Metrics,
) -> Result<Option<RedisNode>, StartError> {
    if !config.enabled() {
        return Ok(None);
    }
    let node_id = if config.node_id.is_empty() {
        format!("{:016x}", random_u64())
    } else {
        config.node_id.clone()
    };
    let node = RedisNode::start(&config.redis_url, &config.prefix, &node_id)
        .map_err(|e| StartError(format!("cluster.redis_url: {e}")))?
        .with_liveness(config.heartbeat_s, config.node_timeout_s)
        .with_webhook_hold(webhook_hold)
        .with_counters(metrics.cluster());
    log::info!(
        "cluster: node {node_id} joins cluster {} on {}",
        config.prefix,
        crate::logging::redacted_url(&config.redis_url)
    );
    Ok(Some(node))
}

/// A number that differs from run to run and node to node.
fn random_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 31)
}

fn log_started(addr: SocketAddr, tls: bool, plan: &placement::Plan, apps: &Apps) {
    let scheme = if tls {
        "TLS: wss:// and https://"
    } else {
        "ws:// and http://"
    };
    log::info!(
        "ringcast listening on {addr} ({scheme}; {} shards on cpus {:?}, API core on cpu {})",
        plan.shard_cpus.len(),
        plan.shard_cpus,
        plan.api_cpu
    );
    // Only the dev app's secret, which is public anyway, is ever written to the log.
    let dev_secret = crate::config::AppConfig::dev().secret;
    for app in apps.iter() {
        let secret = if app.secret() == dev_secret {
            app.secret()
        } else {
            "(set, not logged)"
        };
        log::info!("app id={} key={} secret={secret}", app.id(), app.key());
    }
}
