//! Presence membership: per channel, each user's info and the connections (anywhere in the
//! cluster) it is subscribed with. A user joins on its first connection and leaves with its
//! last, which is when `member_added` / `member_removed` go out.

use crate::app::AppIdx;
use crate::protocol::SocketId;
use ahash::AHashMap;
use std::collections::BTreeMap;

/// A successful join: the channel's members afterwards (for `subscription_succeeded`) and
/// whether this was the user's first connection (so `member_added` is due).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub first_connection: bool,
    /// `{"presence":{"ids":[…],"hash":{…},"count":N}}`, unencoded.
    pub presence_data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The channel already has `max_presence_members_per_channel` distinct users.
    Full { max: usize },
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
    fn join(
        &mut self,
        app: AppIdx,
        channel: &str,
        user_id: &str,
        user_info: &str,
        socket: SocketId,
        max_members: usize,
    ) -> Result<Joined, JoinError>;

    fn leave(&mut self, app: AppIdx, channel: &str, user_id: &str, socket: SocketId) -> Left;

    /// Distinct user ids on a channel.
    fn user_ids(&self, app: AppIdx, channel: &str) -> Vec<String>;
}

struct Member {
    info: String,
    sockets: Vec<SocketId>,
}

/// Presence for a single node, in the API core's memory.
#[derive(Default)]
pub struct LocalPresence {
    channels: AHashMap<(AppIdx, Box<str>), BTreeMap<String, Member>>,
}

fn presence_data(members: &BTreeMap<String, Member>) -> String {
    let ids: Vec<&String> = members.keys().collect();
    let mut hash = String::from("{");
    for (i, (id, m)) in members.iter().enumerate() {
        if i > 0 {
            hash.push(',');
        }
        hash.push_str(&serde_json::to_string(id).unwrap_or_default());
        hash.push(':');
        hash.push_str(&m.info);
    }
    hash.push('}');
    format!(
        r#"{{"presence":{{"ids":{},"hash":{hash},"count":{}}}}}"#,
        serde_json::to_string(&ids).unwrap_or_default(),
        members.len()
    )
}

impl Presence for LocalPresence {
    fn join(
        &mut self,
        app: AppIdx,
        channel: &str,
        user_id: &str,
        user_info: &str,
        socket: SocketId,
        max_members: usize,
    ) -> Result<Joined, JoinError> {
        let members = self.channels.entry((app, channel.into())).or_default();
        let first_connection = match members.get_mut(user_id) {
            Some(m) => {
                if !m.sockets.contains(&socket) {
                    m.sockets.push(socket);
                }
                false
            }
            None => {
                if members.len() >= max_members {
                    if members.is_empty() {
                        self.channels.remove(&(app, channel.into()));
                    }
                    return Err(JoinError::Full { max: max_members });
                }
                members.insert(
                    user_id.to_string(),
                    Member {
                        info: user_info.to_string(),
                        sockets: vec![socket],
                    },
                );
                true
            }
        };
        Ok(Joined {
            first_connection,
            presence_data: presence_data(members),
        })
    }

    fn leave(&mut self, app: AppIdx, channel: &str, user_id: &str, socket: SocketId) -> Left {
        let key = (app, Box::<str>::from(channel));
        let Some(members) = self.channels.get_mut(&key) else {
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
            self.channels.remove(&key);
        }
        Left::LastConnection
    }

    fn user_ids(&self, app: AppIdx, channel: &str) -> Vec<String> {
        self.channels
            .get(&(app, channel.into()))
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_connection_of_a_user() {
        let mut p = LocalPresence::default();
        let (app, s1, s2, s3) = (
            AppIdx(0),
            SocketId::new(0, 1, 1),
            SocketId::new(1, 1, 2),
            SocketId::new(0, 2, 3),
        );
        let j = p
            .join(app, "presence-a", "u1", r#"{"n":1}"#, s1, 10)
            .unwrap();
        assert!(j.first_connection);
        assert_eq!(
            j.presence_data,
            r#"{"presence":{"ids":["u1"],"hash":{"u1":{"n":1}},"count":1}}"#
        );
        assert!(
            !p.join(app, "presence-a", "u1", r#"{"n":1}"#, s2, 10)
                .unwrap()
                .first_connection
        );
        assert!(
            p.join(app, "presence-a", "u2", "null", s3, 10)
                .unwrap()
                .first_connection
        );
        assert_eq!(p.user_ids(app, "presence-a"), vec!["u1", "u2"]);
        assert_eq!(
            p.leave(app, "presence-a", "u1", s1),
            Left::OtherConnectionsRemain
        );
        assert_eq!(p.leave(app, "presence-a", "u1", s1), Left::NotAMember);
        assert_eq!(p.leave(app, "presence-a", "u1", s2), Left::LastConnection);
        assert_eq!(p.leave(app, "presence-a", "u2", s3), Left::LastConnection);
        assert!(p.channels.is_empty(), "empty channels are dropped");
    }

    #[test]
    fn member_limit_counts_distinct_users() {
        let mut p = LocalPresence::default();
        let app = AppIdx(0);
        p.join(app, "presence-b", "u1", "{}", SocketId::new(0, 1, 1), 1)
            .unwrap();
        assert!(
            p.join(app, "presence-b", "u1", "{}", SocketId::new(0, 2, 1), 1)
                .is_ok()
        );
        assert_eq!(
            p.join(app, "presence-b", "u2", "{}", SocketId::new(0, 3, 1), 1),
            Err(JoinError::Full { max: 1 })
        );
    }
}
