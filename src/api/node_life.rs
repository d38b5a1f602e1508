//! The node's life in a cluster: it beats, sweeps dead nodes and announces what ended with
//! them, registers its own state again when Redis lost it, and hands what other nodes accepted
//! to its shards.

use super::cluster::holds::Ticket;
use super::cluster::{self, Beat, NodeEvent};
use super::unfinished::Departure;
use super::{ApiCore, membership, watchlists};
use crate::app::AppIdx;
use crate::bus::{Broadcast, ShardCommand};
use crate::webhook_kind::Kind;
use glommio::timer::Timer;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Beats for this node and sweeps the dead ones.
pub async fn watch_nodes(core: Rc<ApiCore>, every: Duration) {
    let mut failing = false;
    // Redis lost what this node registered, and registering it again has not finished yet:
    // the next beat tries again (a reconnecting link can fail a step midway).
    let mut owed = false;
    loop {
        let nodes = &core.cluster.nodes;
        let result = match nodes.beat().await {
            Ok(beat) => {
                if failing {
                    log::info!("cluster: heartbeats reach Redis again");
                }
                match beat {
                    // Counts changed meanwhile: this node's exact shares again.
                    Beat::Registered if failing || owed => owed = !register_again(&core).await,
                    Beat::Registered => {}
                    Beat::Lost => owed = !register_again(&core).await,
                    // Its clients are on their way out: nothing of theirs is registered again.
                    Beat::Swept => disown_clients(&core).await,
                }
                nodes.sweep().await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(gone) => {
                failing = false;
                replay_unfinished(&core).await;
                departed(&core, gone).await;
            }
            // One line per outage, not one per beat.
            Err(e) if !failing => {
                failing = true;
                log::warn!("cluster: heartbeat: {e}");
            }
            Err(_) => {}
        }
        Timer::new(every).await;
    }
}

/// What ended with a dead node: its members' `member_removed`, the channels it vacated (with
/// their webhooks) and its users' going offline, sent once (by the node that swept it).
pub async fn departed(core: &ApiCore, gone: Vec<cluster::Departure>) {
    for d in gone {
        match d {
            cluster::Departure::Member {
                app_id,
                channel,
                user_id,
                hold,
            } => {
                let app = core.apps.now().by_id(&app_id).map(|a| a.idx);
                if let Some(app) = app {
                    let ticket = swept(core, app, Kind::MemberRemoved, hold);
                    membership::removed(core, app, &channel, &user_id, ticket).await;
                }
            }
            cluster::Departure::Vacated {
                app_id,
                channel,
                hold,
            } => {
                if let Some(app) = core.apps.now().by_id(&app_id) {
                    let ticket = swept(core, app.idx, Kind::ChannelVacated, hold);
                    core.webhooks.vacated(app.idx, &channel, ticket);
                }
            }
            cluster::Departure::Offline { app_id, user_id } => {
                let app = core.apps.now().by_id(&app_id).map(|a| a.idx);
                if let Some(app) = app {
                    watchlists::changed(core, app, &user_id, false).await;
                }
            }
        }
    }
}

/// The hold the sweep placed for a departure, if the app's webhooks care.
fn swept(core: &ApiCore, app: AppIdx, kind: Kind, token: Box<str>) -> Option<Ticket> {
    let ticket = core.webhooks.ticket_for(app, kind)?;
    Some(Ticket { token, ..ticket })
}

/// Hands what other nodes accepted to this node's shards.
pub async fn from_other_nodes(core: Rc<ApiCore>) {
    loop {
        let event = match core.cluster.transport.recv().await {
            Ok(event) => event,
            Err(e) => {
                log::warn!("cluster: {e}");
                Timer::new(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(app) = core.apps.now().by_id(event.app_id()).map(|a| a.idx) else {
            log::warn!(
                "cluster: an event for app {}, which this node does not serve",
                event.app_id()
            );
            continue;
        };
        match event {
            NodeEvent::Broadcast {
                channel,
                payload,
                except,
                cacheable,
                ..
            } => {
                let b = Broadcast {
                    app,
                    channel,
                    payload,
                    except,
                    cacheable,
                    accepted: Instant::now(),
                };
                core.deliver_here(Arc::new(b)).await;
            }
            NodeEvent::TerminateUser { user_id, .. } => {
                let cmd = || ShardCommand::TerminateUser {
                    app,
                    user_id: user_id.clone(),
                };
                core.shards.send_all(cmd).await;
            }
            NodeEvent::UserStatus {
                user_id, online, ..
            } => watchlists::tell_watchers(&core, app, &user_id, online).await,
        }
    }
}

/// The other nodes declared this node dead while it was cut off from Redis, and told everyone
/// its clients had gone: every client is closed with 4200 (reconnect), so each comes back and
/// is announced again, consistently everywhere.
async fn disown_clients(core: &ApiCore) {
    log::warn!(
        "cluster: the other nodes declared this node dead while it was cut off; closing its \
         clients so they reconnect"
    );
    core.shards.send_all(|| ShardCommand::Disown).await;
}

/// Tells Redis the departures it missed while unreachable (what fails again is kept again).
async fn replay_unfinished(core: &ApiCore) {
    let (kept, dropped) = core.unfinished.take();
    if kept.is_empty() && dropped == 0 {
        return;
    }
    log::info!(
        "cluster: telling Redis of {} departures it missed ({dropped} more were dropped)",
        kept.len()
    );
    for d in kept {
        match d {
            Departure::PresenceLeave {
                app,
                channel,
                user_id,
                socket,
            } => membership::leave(core, app, &channel, &user_id, socket).await,
            Departure::SignOut {
                app,
                user_id,
                socket,
            } => watchlists::offline(core, app, &user_id, socket).await,
        }
    }
}

/// Redis no longer has what this node registered (it restarted empty, or swept this node as
/// dead while it was cut off): this node's subscription counts and presence connections go
/// back, and its signed-in connections and connections per limited app, without events (its
/// clients never left). `false` when a step failed (logged), to be tried again.
async fn register_again(core: &ApiCore) -> bool {
    let counts = core.interest.local_counts();
    let members = core.local_members.all();
    let users = core.watchers.signed_in();
    for (app, channel, n) in &counts {
        if let Err(e) = core.cluster.occupancy.restore(*app, channel, *n).await {
            log::warn!("cluster: registering this node again: {e}");
            return false;
        }
    }
    for m in &members {
        let joined = core.cluster.presence.join(
            m.app,
            &m.channel,
            &m.user_id,
            &m.user_info,
            m.socket,
            usize::MAX,
        );
        if let Err(e) = joined.await {
            log::warn!("cluster: registering this node again: {e}");
            return false;
        }
    }
    if let Err(e) = core.cluster.connections.restore().await {
        log::warn!("cluster: registering this node again: {e}");
        return false;
    }
    for (app, user_id, socket) in &users {
        if let Err(e) = core.cluster.users.connect(*app, user_id, *socket).await {
            log::warn!("cluster: registering this node again: {e}");
            return false;
        }
    }
    log::info!(
        "cluster: registered this node's state in Redis ({} channels, {} presence connections, \
         {} signed-in connections)",
        counts.len(),
        members.len(),
        users.len()
    );
    true
}
