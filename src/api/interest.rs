//! Which channels this node receives from the other nodes. In a cluster, a channel's
//! broadcasts reach a node only while it has declared interest in the channel
//! ([`super::cluster::Transport::interest`]); a subscription on this node is confirmed only once
//! that interest is in place, so no broadcast accepted elsewhere after the client heard
//! `subscription_succeeded` can miss it. Interest is dropped [`LINGER`] after the channel's last
//! local subscriber leaves, so a channel that empties and fills again does not flap. A cache
//! channel's shards get its last event from the shared store when interest starts, and
//! forget it when interest ends (what arrives meanwhile would not reach them).

use super::ApiCore;
use super::cluster::ClusterError;
use crate::app::AppIdx;
use crate::bus::ShardCommand;
use crate::protocol::ChannelName;
use ahash::AHashMap;
use glommio::sync::Semaphore;
use glommio::timer::Timer;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn is_cache(channel: &str) -> bool {
    ChannelName::classify(channel).is_some_and(|c| c.cache)
}

/// A cache channel this node starts serving: its shards get the last event from the shared
/// store, published while this node did not receive the channel (or before it started).
/// They keep a newer one that has arrived meanwhile.
async fn remember_cached(core: &ApiCore, app: AppIdx, channel: &str) {
    if !is_cache(channel) {
        return;
    }
    let cached = match core.cluster.cache.last(app, channel).await {
        Ok(Some(cached)) => cached,
        Ok(None) => return,
        Err(e) => return log::warn!("cluster: the last event of {channel}: {e}"),
    };
    let Some(payload) = cached.frame else { return };
    let remember = || ShardCommand::Remember {
        app,
        channel: channel.into(),
        payload: payload.clone(),
        ttl_s: cached.ttl_s,
    };
    core.shards.send_all(remember).await;
}

/// How long interest outlives a channel's last local subscriber.
pub const LINGER: Duration = Duration::from_secs(5);

type Channel = (AppIdx, Box<str>);

enum State {
    /// Asked the transport; the semaphore closes when it has answered.
    Changing(Rc<Semaphore>),
    Active,
}

struct Entry {
    /// Subscriptions on this node, from the shards' reports.
    local: i64,
    /// Last time a subscription was admitted or the count changed.
    touched: Instant,
    state: State,
}

/// What [`Interest::ensure`] found.
enum Look {
    Active,
    /// Nobody had it: this caller asks the transport.
    Start(Rc<Semaphore>),
    Wait(Rc<Semaphore>),
}

#[derive(Default)]
pub struct Interest {
    entries: RefCell<AHashMap<Channel, Entry>>,
}

impl Interest {
    /// Makes sure this node receives `channel`'s broadcasts from the other nodes.
    pub async fn ensure(
        &self,
        core: &ApiCore,
        app: AppIdx,
        channel: &str,
    ) -> Result<(), ClusterError> {
        if !core.cluster.transport.has_peers() {
            return Ok(());
        }
        let key: Channel = (app, channel.into());
        loop {
            match self.look(&key) {
                Look::Active => return Ok(()),
                Look::Start(done) => return self.start(core, key, done).await,
                // Someone else is changing it: look again once they are done.
                Look::Wait(done) => {
                    let _ = done.acquire(1).await;
                }
            }
        }
    }

    /// Where `key` stands; starts it (as `Changing`) when nobody has.
    fn look(&self, key: &Channel) -> Look {
        let mut entries = self.entries.borrow_mut();
        if let Some(e) = entries.get_mut(key) {
            e.touched = Instant::now();
            return match &e.state {
                State::Active => Look::Active,
                State::Changing(done) => Look::Wait(done.clone()),
            };
        }
        let done = Rc::new(Semaphore::new(0));
        let entry = Entry {
            local: 0,
            touched: Instant::now(),
            state: State::Changing(done.clone()),
        };
        entries.insert(key.clone(), entry);
        Look::Start(done)
    }

    async fn start(
        &self,
        core: &ApiCore,
        key: Channel,
        done: Rc<Semaphore>,
    ) -> Result<(), ClusterError> {
        let app_id = core.apps.now().get(key.0).id().to_string();
        let result = core.cluster.transport.interest(&app_id, &key.1, true).await;
        if result.is_ok() {
            remember_cached(core, key.0, &key.1).await;
        }
        {
            let mut entries = self.entries.borrow_mut();
            match &result {
                Ok(()) => {
                    if let Some(e) = entries.get_mut(&key) {
                        e.state = State::Active;
                    }
                }
                Err(_) => {
                    entries.remove(&key);
                }
            }
        }
        done.close();
        result
    }

    /// A shard's subscription count changed; the last local subscriber gone, interest ends
    /// after [`LINGER`] unless the channel is subscribed again meanwhile.
    pub fn changed(&self, core: &Rc<ApiCore>, app: AppIdx, channel: &str, delta: i64) {
        let key: Channel = (app, channel.into());
        let empty = {
            let mut entries = self.entries.borrow_mut();
            let Some(e) = entries.get_mut(&key) else {
                return;
            };
            e.local = e.local.saturating_add(delta);
            e.touched = Instant::now();
            e.local <= 0
        };
        if empty {
            let core = core.clone();
            glommio::spawn_local(async move {
                Timer::new(LINGER).await;
                core.interest.stop_if_idle(&core, key).await;
            })
            .detach();
        }
    }

    /// This node's subscriptions per channel (what it registers again when Redis lost them).
    pub fn local_counts(&self) -> Vec<(AppIdx, Box<str>, u64)> {
        self.entries
            .borrow()
            .iter()
            .filter(|(_, e)| e.local > 0)
            .map(|((app, ch), e)| (*app, ch.clone(), e.local as u64))
            .collect()
    }

    async fn stop_if_idle(&self, core: &ApiCore, key: Channel) {
        let done = {
            let mut entries = self.entries.borrow_mut();
            let Some(e) = entries.get_mut(&key) else {
                return;
            };
            let idle = e.local <= 0 && e.touched.elapsed() >= LINGER;
            if !idle || !matches!(e.state, State::Active) {
                return;
            }
            let done = Rc::new(Semaphore::new(0));
            e.state = State::Changing(done.clone());
            done
        };
        let app_id = core.apps.now().get(key.0).id().to_string();
        if let Err(e) = core
            .cluster
            .transport
            .interest(&app_id, &key.1, false)
            .await
        {
            log::warn!("cluster: leaving {}: {e}", key.1);
        }
        if is_cache(&key.1) {
            let (app, channel) = (key.0, &key.1);
            let forget = || ShardCommand::Forget {
                app,
                channel: channel.clone(),
            };
            core.shards.send_all(forget).await;
        }
        self.entries.borrow_mut().remove(&key);
        done.close();
    }
}
