//! Presence membership: per channel, each user's info and the connections (anywhere in the
//! cluster) it is subscribed with. A user joins on its first connection and leaves with its
//! last, which is when `member_added` / `member_removed` go out.

use super::holds::{HoldOf, MemoryHolds, Ticket};
use super::{StateFuture, ready};
use crate::app::AppIdx;
use crate::protocol::SocketId;
use ahash::AHashMap;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// An admitted join: the channel's members afterwards (for `subscription_succeeded`) and
/// whether this was the user's first connection (so `member_added` is due).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub first_connection: bool,
    /// The user came back while its `member_removed` was held: the hold is cancelled (and
    /// `member_added` is not due either).
    pub returned: bool,
    /// `{"presence":{"ids":[…],"hash":{…},"count":N}}`, unencoded.
    pub presence_data: String,
}

/// The outcome of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    Admitted(Joined),
    /// The channel already has `max_presence_members_per_channel` distinct users.
    Full {
        max: usize,
    },
}

/// Whether a leave removed the user's last connection (so `member_removed` is due).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    LastConnection,
    OtherConnectionsRemain,
    /// The connection was not a member (it left before its join was accepted, or was refused).
    NotAMember,
}

/// Cluster-wide presence membership.
pub trait Presence {
    /// Adds a connection of `user_id` (with its raw JSON `user_info`) to a channel.
    fn join<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
        user_info: &'a str,
        socket: SocketId,
        max_members: usize,
    ) -> StateFuture<'a, Join>;

    /// Removes a connection; if it was the user's last, `hold` (if any) is placed on its
    /// `member_removed` in the same step (a first connection's join cancels it).
    fn leave<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
        socket: SocketId,
        hold: Option<&'a Ticket>,
    ) -> StateFuture<'a, Left>;

    /// Distinct user ids on a channel, sorted.
    fn user_ids<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, Vec<String>>;
}

struct Member {
    info: String,
    sockets: Vec<SocketId>,
}

type Members = BTreeMap<String, Member>;

/// Presence for a single node, in the API core's memory.
#[derive(Default)]
pub struct MemoryPresence {
    channels: RefCell<AHashMap<(AppIdx, Box<str>), Members>>,
    holds: Rc<MemoryHolds>,
}

/// `{"presence":{"ids":[…],"hash":{…},"count":N}}` of members sorted by user id.
pub(super) fn presence_data<'a>(
    members: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> String {
    let ids: Vec<&str> = members.clone().map(|(id, _)| id).collect();
    let mut hash = String::from("{");
    for (i, (id, info)) in members.enumerate() {
        if i > 0 {
            hash.push(',');
        }
        hash.push_str(&serde_json::to_string(id).unwrap_or_default());
        hash.push(':');
        hash.push_str(info);
    }
    hash.push('}');
    format!(
        r#"{{"presence":{{"ids":{},"hash":{hash},"count":{}}}}}"#,
        serde_json::to_string(&ids).unwrap_or_default(),
        ids.len()
    )
}

impl MemoryPresence {
    /// Membership whose `member_removed` holds are kept in `holds`.
    pub fn new(holds: Rc<MemoryHolds>) -> MemoryPresence {
        MemoryPresence {
            channels: RefCell::default(),
            holds,
        }
    }

    fn join_now(
        &self,
        app: AppIdx,
        channel: &str,
        user_id: &str,
        user_info: &str,
        socket: SocketId,
        max: usize,
    ) -> Join {
        let mut channels = self.channels.borrow_mut();
        let members = channels.entry((app, channel.into())).or_default();
        let first_connection = if let Some(m) = members.get_mut(user_id) {
            if !m.sockets.contains(&socket) {
                m.sockets.push(socket);
            }
            false
        } else if members.len() >= max {
            if members.is_empty() {
                channels.remove(&(app, channel.into()));
            }
            return Join::Full { max };
        } else {
            let member = Member {
                info: user_info.to_string(),
                sockets: vec![socket],
            };
            members.insert(user_id.to_string(), member);
            true
        };
        let of = HoldOf::Removed {
            app,
            channel,
            user_id,
        };
        Join::Admitted(Joined {
            first_connection,
            returned: first_connection && self.holds.cancel(of),
            presence_data: presence_data(members.iter().map(|(id, m)| (id.as_str(), &*m.info))),
        })
    }

    fn leave_now(
        &self,
        app: AppIdx,
        channel: &str,
        user_id: &str,
        socket: SocketId,
        hold: Option<&Ticket>,
    ) -> Left {
        let mut channels = self.channels.borrow_mut();
        let key = (app, Box::<str>::from(channel));
        let Some(members) = channels.get_mut(&key) else {
            return Left::NotAMember;
        };
        let Some(member) = members.get_mut(user_id) else {
            return Left::NotAMember;
        };
        let Some(pos) = member.sockets.iter().position(|s| *s == socket) else {
            return Left::NotAMember;
        };
        member.sockets.swap_remove(pos);
        if !member.sockets.is_empty() {
            return Left::OtherConnectionsRemain;
        }
        members.remove(user_id);
        if members.is_empty() {
            channels.remove(&key);
        }
        let of = HoldOf::Removed {
            app,
            channel,
            user_id,
        };
        self.holds.place(of, hold);
        Left::LastConnection
    }
}

impl Presence for MemoryPresence {
    fn join<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
        user_info: &'a str,
        socket: SocketId,
        max_members: usize,
    ) -> StateFuture<'a, Join> {
        ready(self.join_now(app, channel, user_id, user_info, socket, max_members))
    }

    fn leave<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
        socket: SocketId,
        hold: Option<&'a Ticket>,
    ) -> StateFuture<'a, Left> {
        ready(self.leave_now(app, channel, user_id, socket, hold))
    }

    fn user_ids<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, Vec<String>> {
        let ids = self
            .channels
            .borrow()
            .get(&(app, channel.into()))
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        ready(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_lite::future::block_on;

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let holds = Rc::new(MemoryHolds::default());
        let p = MemoryPresence::new(holds.clone());
        block_on(super::super::contract::presence(&p, &*holds));
        assert!(p.channels.borrow().is_empty(), "empty channels are dropped");
        assert!(holds.is_empty());
    }
}
