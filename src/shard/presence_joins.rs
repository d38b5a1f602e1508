//! A connection's presence channels and where each join stands: `Pending` (asked the API
//! core with a request id) or `Member` (admitted, in the channel index). The transitions are
//! the only way to change it; `rules::presence_join` drives them.

use crate::bus::RequestId;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinState {
    /// Asked the API core with this request; not in the channel index yet.
    Pending(RequestId),
    /// Admitted: in the channel index.
    Member,
}

#[derive(Debug, Clone)]
struct Entry {
    channel: Rc<str>,
    /// The user id given in `channel_data`.
    user_id: Rc<str>,
    state: JoinState,
}

/// A connection's presence channels, joined or being joined.
#[derive(Debug, Default)]
pub struct PresenceJoins(Vec<Entry>);

impl PresenceJoins {
    pub fn contains(&self, channel: &str) -> bool {
        self.0.iter().any(|e| &*e.channel == channel)
    }

    /// The user id the connection gave for `channel` (client events there carry it).
    pub fn user_on(&self, channel: &str) -> Option<&Rc<str>> {
        self.0
            .iter()
            .find(|e| &*e.channel == channel)
            .map(|e| &e.user_id)
    }

    /// Every channel with the user id given for it, joined or pending.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|e| (&*e.channel, &*e.user_id))
    }

    pub(crate) fn begin(&mut self, channel: &str, user_id: &str, request: RequestId) {
        self.0.push(Entry {
            channel: channel.into(),
            user_id: user_id.into(),
            state: JoinState::Pending(request),
        });
    }

    /// The API core admitted `request`: its channel, if that join is still pending.
    pub(crate) fn admit(&mut self, request: RequestId) -> Option<Rc<str>> {
        let e = self
            .0
            .iter_mut()
            .find(|e| e.state == JoinState::Pending(request))?;
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

    /// Leaves `channel` (joined or pending); the user id it was joined with.
    pub fn leave(&mut self, channel: &str) -> Option<Rc<str>> {
        let pos = self.0.iter().position(|e| &*e.channel == channel)?;
        Some(self.0.swap_remove(pos).user_id)
    }
}
