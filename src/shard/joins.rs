//! A connection's subscriptions that involve the API core, and where each stands: `Pending`
//! (asked the API core with a request id, not in the channel index yet) or, for presence,
//! `Member` (admitted, in the channel index, with the user id it joined as). A presence join
//! always asks; in a cluster every subscription does, so that the node receives the channel's
//! broadcasts from the other nodes before it confirms. The transitions are the only way to
//! change it; `rules::presence_join` drives them.

use crate::bus::RequestId;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinState {
    /// Asked the API core with this request; not in the channel index yet.
    Pending(RequestId),
    /// A presence member: admitted, in the channel index.
    Member,
}

#[derive(Debug, Clone)]
struct Entry {
    channel: Rc<str>,
    /// For presence: the user id given in `channel_data`.
    user_id: Option<Rc<str>>,
    state: JoinState,
}

/// What leaving a channel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaving {
    /// A presence channel, joined or pending, with the user id it was joined as.
    Presence(Rc<str>),
    /// A plain subscription still waiting for the API core.
    Pending,
}

/// A connection's joins, pending or (presence) admitted.
#[derive(Debug, Default)]
pub struct Joins(Vec<Entry>);

impl Joins {
    pub fn contains(&self, channel: &str) -> bool {
        self.0.iter().any(|e| &*e.channel == channel)
    }

    /// Joins still waiting for the API core (not counted among the connection's channels yet).
    pub fn pending(&self) -> usize {
        self.0
            .iter()
            .filter(|e| matches!(e.state, JoinState::Pending(_)))
            .count()
    }

    /// The user id the connection joined `channel` as (client events there carry it).
    pub fn user_on(&self, channel: &str) -> Option<&Rc<str>> {
        self.0
            .iter()
            .find(|e| &*e.channel == channel)
            .and_then(|e| e.user_id.as_ref())
    }

    /// Every presence channel with the user id given for it, joined or pending.
    pub fn presence(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter_map(|e| Some((&*e.channel, &**e.user_id.as_ref()?)))
    }

    pub(crate) fn begin(&mut self, channel: &str, user_id: Option<&str>, request: RequestId) {
        self.0.push(Entry {
            channel: channel.into(),
            user_id: user_id.map(Rc::from),
            state: JoinState::Pending(request),
        });
    }

    /// The API core admitted `request`: its channel, if that join is still pending. A plain
    /// subscription is done with (the index holds it); a presence join becomes a member.
    pub(crate) fn admit(&mut self, request: RequestId) -> Option<Rc<str>> {
        let pos = self
            .0
            .iter()
            .position(|e| e.state == JoinState::Pending(request))?;
        if self.0[pos].user_id.is_none() {
            return Some(self.0.swap_remove(pos).channel);
        }
        let e = &mut self.0[pos];
        e.state = JoinState::Member;
        Some(e.channel.clone())
    }

    /// The API core refused `request`: its channel, if that join is still pending.
    pub(crate) fn refuse(&mut self, request: RequestId) -> Option<Rc<str>> {
        let pos = self
            .0
            .iter()
            .position(|e| e.state == JoinState::Pending(request))?;
        Some(self.0.swap_remove(pos).channel)
    }

    /// Leaves `channel` (joined or pending).
    pub fn leave(&mut self, channel: &str) -> Option<Leaving> {
        let pos = self.0.iter().position(|e| &*e.channel == channel)?;
        Some(match self.0.swap_remove(pos).user_id {
            Some(user) => Leaving::Presence(user),
            None => Leaving::Pending,
        })
    }
}
