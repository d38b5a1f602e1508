//! Everything a shard's protocol rules read and change, in one value: the hub (connections
//! and the local channel index), the cache channels' last events, the questions awaiting an
//! answer from the API core, and the coarse clock. The shard keeps it in one `RefCell` that
//! is borrowed once per client message or command; the rules take it as `&mut`, so no rule
//! can borrow it twice.

use super::hub::Hub;
use super::outbox::Frame;
use crate::bus::{ConnRef, ReplyTo, RequestId, ShardId};
use crate::clock::Tick;
use crate::fair_share::Cap;
use crate::http::ApiResponse;
use crate::last_events::LastEvents;
use crate::protocol::ErrorCode;
use crate::rate::ConnectsPerIp;
use ahash::AHashMap;
use glommio::channels::local_channel::LocalSender;

pub struct ShardState {
    pub hub: Hub,
    /// The last event of every cache channel, for new subscribers.
    pub last_events: LastEvents<Frame>,
    pub outstanding: Outstanding,
    /// Seconds since the shard started, advanced by its sweeper.
    pub now: Tick,
    /// Part of a cluster: every subscription is confirmed only once the API core has made
    /// sure this node receives the channel's broadcasts from the other nodes.
    pub clustered: bool,
    /// WebSocket upgrades per source address this second.
    pub connects: ConnectsPerIp,
    /// Each app's figures, and what the web console watches.
    pub console: super::console::Tap,
}

impl ShardState {
    pub fn new(shard: ShardId, apps: usize, outbound_limit: usize, cache_cap: Cap) -> ShardState {
        ShardState {
            hub: Hub::new(apps, outbound_limit),
            last_events: LastEvents::new(cache_cap),
            outstanding: Outstanding::new(shard),
            now: 0,
            clustered: false,
            connects: ConnectsPerIp::default(),
            console: Default::default(),
        }
    }
}

/// Who waits for the answer to a question.
pub enum Waiter {
    /// An HTTP connection's task, parked until the API core answers.
    Http(LocalSender<ApiResponse>),
    /// A connection whose join (presence, or any subscription in a cluster) is pending.
    Join(ConnRef),
    /// A new connection waiting to hear whether the cluster admits it.
    Admit(LocalSender<Result<(), (ErrorCode, String)>>),
}

/// The shard's questions to the API core that await an answer, by [`RequestId`]. Ids grow
/// from 1 and are never reused, so a late answer can never reach the wrong waiter. An entry
/// lives until its answer arrives; the API core answers every question it receives.
pub struct Outstanding {
    shard: ShardId,
    next: u64,
    waiting: AHashMap<RequestId, Waiter>,
}

impl Outstanding {
    pub fn new(shard: ShardId) -> Outstanding {
        Outstanding {
            shard,
            next: 0,
            waiting: AHashMap::new(),
        }
    }

    /// Registers `waiter` under a fresh id; the question must carry the returned address.
    pub fn ask(&mut self, waiter: Waiter) -> ReplyTo {
        self.next += 1;
        let request = RequestId(self.next);
        self.waiting.insert(request, waiter);
        ReplyTo {
            shard: self.shard,
            request,
        }
    }

    /// Takes the waiter of an answered question.
    pub fn answered(&mut self, request: RequestId) -> Option<Waiter> {
        self.waiting.remove(&request)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
