//! Channel names and kinds (docs/protocol.md). The kind is decided by prefix, at the start of the
//! name only, once, when a name enters the server.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Public,
    Private,
    PrivateEncrypted,
    Presence,
    /// `#server-to-user-{id}`: only the connection signed in as `{id}` may subscribe.
    ServerToUser,
}

/// A validated channel name with its kind and whether it is a cache channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelName<'a> {
    pub name: &'a str,
    pub kind: ChannelKind,
    pub cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelNameError {
    Empty,
    TooLong { max: usize },
    BadCharacter,
}

impl fmt::Display for ChannelNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "channel name is empty"),
            Self::TooLong { max } => write!(f, "channel name is longer than {max} characters"),
            Self::BadCharacter => write!(
                f,
                "channel name may only contain A-Z a-z 0-9 _ - = @ , . ; (and # only in #server-to-user-)"
            ),
        }
    }
}

const SERVER_TO_USER: &str = "#server-to-user-";

// Longest prefixes first, so `private-encrypted-cache-` is not taken for `private-`.
const PREFIXES: [(&str, ChannelKind, bool); 7] = [
    (
        "private-encrypted-cache-",
        ChannelKind::PrivateEncrypted,
        true,
    ),
    ("private-encrypted-", ChannelKind::PrivateEncrypted, false),
    ("private-cache-", ChannelKind::Private, true),
    ("private-", ChannelKind::Private, false),
    ("presence-cache-", ChannelKind::Presence, true),
    ("presence-", ChannelKind::Presence, false),
    ("cache-", ChannelKind::Public, true),
];

fn allowed(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl<'a> ChannelName<'a> {
    pub fn parse(name: &'a str, max_len: usize) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if name.len() > max_len {
            return Err(ChannelNameError::TooLong { max: max_len });
        }
        if let Some(user) = name.strip_prefix(SERVER_TO_USER) {
            if user.is_empty() || !user.bytes().all(allowed) {
                return Err(ChannelNameError::BadCharacter);
            }
            return Ok(ChannelName {
                name,
                kind: ChannelKind::ServerToUser,
                cache: false,
            });
        }
        if !name.bytes().all(allowed) {
            return Err(ChannelNameError::BadCharacter);
        }
        let (kind, cache) = PREFIXES
            .iter()
            .find(|(p, _, _)| name.starts_with(p))
            .map(|(_, k, c)| (*k, *c))
            .unwrap_or((ChannelKind::Public, false));
        Ok(ChannelName { name, kind, cache })
    }

    /// The kind of a name the server has already accepted (no length limit applies), e.g. one
    /// taken from the channel index or a validated publish.
    pub fn classify(name: &'a str) -> Option<Self> {
        Self::parse(name, usize::MAX).ok()
    }

    pub fn is_presence(&self) -> bool {
        self.kind == ChannelKind::Presence
    }

    /// The user id of a `#server-to-user-{id}` channel.
    pub fn server_to_user_id(&self) -> Option<&'a str> {
        self.name.strip_prefix(SERVER_TO_USER)
    }

    pub fn needs_auth(&self) -> bool {
        !matches!(self.kind, ChannelKind::Public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix_at_start_only() {
        let k = |n| ChannelName::parse(n, 200).map(|c| (c.kind, c.cache));
        assert_eq!(k("news"), Ok((ChannelKind::Public, false)));
        assert_eq!(k("cache-news"), Ok((ChannelKind::Public, true)));
        assert_eq!(k("news-private-x"), Ok((ChannelKind::Public, false)));
        assert_eq!(k("private-x"), Ok((ChannelKind::Private, false)));
        assert_eq!(k("private-cache-x"), Ok((ChannelKind::Private, true)));
        assert_eq!(
            k("private-encrypted-x"),
            Ok((ChannelKind::PrivateEncrypted, false))
        );
        assert_eq!(
            k("private-encrypted-cache-x"),
            Ok((ChannelKind::PrivateEncrypted, true))
        );
        assert_eq!(k("presence-x"), Ok((ChannelKind::Presence, false)));
        assert_eq!(k("presence-cache-x"), Ok((ChannelKind::Presence, true)));
        assert_eq!(
            k("#server-to-user-42"),
            Ok((ChannelKind::ServerToUser, false))
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(ChannelName::parse("", 200), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::parse("a b", 200),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            ChannelName::parse("a#b", 200),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            ChannelName::parse("#server-to-user-", 200),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            ChannelName::parse("é", 200),
            Err(ChannelNameError::BadCharacter)
        );
        let long = "a".repeat(201);
        assert_eq!(
            ChannelName::parse(&long, 200),
            Err(ChannelNameError::TooLong { max: 200 })
        );
        assert!(ChannelName::parse("A-z_0=9@,.;", 200).is_ok());
    }
}
