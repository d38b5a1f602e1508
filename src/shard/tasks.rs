//! A shard's control tasks, in its control task queue: the API core's commands, accepting
//! connections, forwarding ordered reports, writing broadcasts to idle sockets, and the
//! once-a-second sweeper.

use super::{Shard, http_phase, reports};
use crate::bus::{ApiCommand, ShardCommand, ShardReceiver};
use crate::clock::Tick;
use crate::protocol::ErrorCode;
use glommio::TaskQueueHandle;
use glommio::channels::local_channel::LocalReceiver;
use glommio::net::TcpListener;
use glommio::timer::Timer;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Starts the tasks and runs the command loop until shutdown.
pub async fn start(
    shard: Rc<Shard>,
    listeners: Vec<super::Listener>,
    from_api: ShardReceiver,
    reports: LocalReceiver<ApiCommand>,
    control: TaskQueueHandle,
) {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let spawn = |f| glommio::spawn_local_into(f, control).expect("the control queue exists");
    let accept = listeners
        .into_iter()
        .map(|l| {
            // SAFETY: the fd comes from a listening std socket whose ownership we hand over.
            let socket = unsafe { TcpListener::from_raw_fd(l.socket.into_raw_fd()) };
            spawn(Box::pin(accept_loop(shard.clone(), socket, l.tls))
                as Pin<Box<dyn Future<Output = ()>>>)
        })
        .collect();
    spawn(Box::pin(sweep_loop(shard.clone()))).detach();
    spawn(Box::pin(super::writer::run(shard.clone()))).detach();
    let forwarder = spawn(Box::pin(reports::forward(shard.clone(), reports)));
    spawn(Box::pin(command_loop(shard, from_api, accept, forwarder))).await;
}

/// Carries out the API core's commands until shutdown.
async fn command_loop(
    shard: Rc<Shard>,
    from_api: ShardReceiver,
    accept: Vec<glommio::Task<()>>,
    forwarder: glommio::Task<()>,
) {
    while let Some(cmd) = from_api.recv().await {
        if let ShardCommand::Shutdown {
            clients_by,
            done_by,
        } = cmd
        {
            for task in accept {
                task.cancel().await;
            }
            shard.shut_down(clients_by).await;
            // "Stopped" goes last, after the departures of the clients just closed, so the
            // API core has heard every one of them when it sees it.
            shard
                .reports
                .push(ApiCommand::ShardStopped { shard: shard.id });
            let wait = done_by.saturating_duration_since(std::time::Instant::now());
            // Past the deadline the API core stops anyway; what is left here is lost.
            let _ = glommio::timer::timeout(wait, async {
                forwarder.await;
                Ok(())
            })
            .await;
            return;
        }
        shard.command(cmd);
    }
}

/// How often failed accepts are logged at most (with their count).
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    // One descriptor held back for when the others run out: it is given up to accept and at
    // once close a waiting connection, so its client hears a refusal instead of hanging in the
    // backlog.
    let mut spare = std::fs::File::open("/dev/null").ok();
    let mut refuse_next = false;
    let mut failed = 0u64;
    let mut logged = std::time::Instant::now() - ACCEPT_LOG_EVERY;
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if refuse_next {
                    // Accepted on the spare's descriptor: closed at once, the spare taken back.
                    refuse_next = false;
                    drop(stream);
                    spare = std::fs::File::open("/dev/null").ok();
                    continue;
                }
                if shard.stopping.get() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                glommio::spawn_local(http_phase::serve(shard.clone(), stream, tls.clone()))
                    .detach();
            }
            Err(e) => {
                failed += 1;
                if logged.elapsed() >= ACCEPT_LOG_EVERY {
                    log::warn!(
                        "shard {}: {failed} accepts failed in the last {} s (out of file \
                         descriptors? raise the open-files limit): {e}",
                        shard.id,
                        ACCEPT_LOG_EVERY.as_secs()
                    );
                    failed = 0;
                    logged = std::time::Instant::now();
                }
                // Out of file descriptors, typically: refuse one waiting client with the
                // spare, then back off instead of spinning.
                match spare.take() {
                    Some(fd) => {
                        drop(fd);
                        refuse_next = true;
                    }
                    None => {
                        refuse_next = false;
                        Timer::new(Duration::from_millis(50)).await;
                        spare = std::fs::File::open("/dev/null").ok();
                    }
                }
            }
        }
    }
}

/// Each app's required sign-in time, if it requires one.
fn signin_deadlines(apps: &crate::app::Apps) -> Vec<Option<Tick>> {
    apps.iter()
        .map(|a| {
            a.config
                .require_user_authentication
                .then_some(a.config.user_authentication_timeout_s as Tick)
        })
        .collect()
}

/// What the sweeper last took from the apps: at which reload, and which apps were serving
/// (neither disabled nor removed).
struct AppsSeen {
    epoch: u64,
    serving: Vec<bool>,
    signin_deadlines: Vec<Option<Tick>>,
}

impl AppsSeen {
    fn of(apps: &crate::app::Apps, epoch: u64) -> AppsSeen {
        AppsSeen {
            epoch,
            serving: apps
                .iter()
                .map(|a| a.config.enabled && !a.removed)
                .collect(),
            signin_deadlines: signin_deadlines(apps),
        }
    }
}

/// Takes reloaded app settings: the sweep's deadlines follow them, and the connections of an
/// app that was removed (4001) or disabled (4003) are closed.
fn take_reloaded_apps(shard: &Shard, seen: &mut AppsSeen) {
    let apps = shard.apps.now();
    if shard.apps.epoch() == seen.epoch {
        return;
    }
    let mut state = shard.state.borrow_mut();
    for app in apps.iter() {
        if seen.serving.get(app.idx.0 as usize) != Some(&true) {
            continue;
        }
        if app.removed {
            state.hub.close_app(app.idx, ErrorCode::UnknownApp);
        } else if !app.config.enabled {
            state.hub.close_app(app.idx, ErrorCode::AppDisabled);
        }
    }
    *seen = AppsSeen::of(&apps, shard.apps.epoch());
    log::info!("shard {}: reloaded app settings in use", shard.id);
}

async fn sweep_loop(shard: Rc<Shard>) {
    let activity = shard.config.activity_timeout as Tick;
    let pong = shard.config.pong_timeout_s as Tick;
    let mut seen = AppsSeen::of(&shard.apps.now(), shard.apps.epoch());
    loop {
        Timer::new(Duration::from_secs(1)).await;
        take_reloaded_apps(&shard, &mut seen);
        let now = shard.tick();
        let mut state = shard.state.borrow_mut();
        state.hub.sweep(
            now,
            activity,
            pong,
            &shard.ping_frame,
            &seen.signin_deadlines,
        );
        state.connects.purge(now);
        if now.is_multiple_of(60) {
            state.last_events.purge(now);
        }
    }
}
