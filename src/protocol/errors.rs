//! Every way the server refuses a client, in one table (docs/protocol.md): each [`ErrorCode`] says
//! whether the connection is closed after it, whether a `pusher:error` event precedes the
//! close, and the reason text a server-initiated close carries; [`closing_bytes`] is the one
//! function that turns a code into what goes on the wire. Channel refusals
//! (`pusher:subscription_error`) are [`SubscriptionRefusal`]s, each with its status.

use crate::protocol::frames;
use crate::ws;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed message or generic error; the connection stays open.
    Malformed,
    UnknownApp,
    AppDisabled,
    OverQuota,
    UnsupportedProtocol,
    /// Sign-in timeout, bad sign-in, or terminated by the app.
    Unauthorized,
    /// Slow consumer or server full: the client backs off before reconnecting.
    OverCapacity,
    /// Server shutting down: the client reconnects at once.
    Reconnect,
    PongTimeout,
    /// Duplicate subscribe, bad channel name, …; the connection stays open.
    Channel,
    /// A refused client event; the connection stays open.
    ClientEvent,
    /// Watchlist over 100 users; the connection stays open.
    Watchlist,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        Self::Malformed,
        Self::UnknownApp,
        Self::AppDisabled,
        Self::OverQuota,
        Self::UnsupportedProtocol,
        Self::Unauthorized,
        Self::OverCapacity,
        Self::Reconnect,
        Self::PongTimeout,
        Self::Channel,
        Self::ClientEvent,
        Self::Watchlist,
    ];

    pub const fn code(self) -> u16 {
        match self {
            Self::Malformed => 4000,
            Self::UnknownApp => 4001,
            Self::AppDisabled => 4003,
            Self::OverQuota => 4004,
            Self::UnsupportedProtocol => 4007,
            Self::Unauthorized => 4009,
            Self::OverCapacity => 4100,
            Self::Reconnect => 4200,
            Self::PongTimeout => 4201,
            Self::Channel => 4300,
            Self::ClientEvent => 4301,
            Self::Watchlist => 4302,
        }
    }

    /// Whether the server closes the connection with this code after reporting it.
    pub fn closes(self) -> bool {
        !matches!(
            self,
            Self::Malformed | Self::Channel | Self::ClientEvent | Self::Watchlist
        )
    }

    /// Whether a `pusher:error` event is sent. Not for a slow consumer (its outbox is full,
    /// so nothing more can reach it) nor for a client that stopped answering pings.
    pub fn sends_error_event(self) -> bool {
        !matches!(self, Self::OverCapacity | Self::PongTimeout)
    }

    /// The `pusher:error` event that reports this code.
    pub fn event(self, message: &str) -> String {
        frames::error(self.code(), message)
    }

    /// The reason a close with this code carries when the server decides it on its own (the
    /// sweeper, a slow consumer, shutdown, `terminate_connections`).
    pub fn close_reason(self) -> &'static str {
        match self {
            Self::UnknownApp => "App key not in this cluster",
            Self::AppDisabled => "App is disabled",
            Self::OverQuota => "Application is over connection quota",
            Self::UnsupportedProtocol => "Unsupported protocol version",
            Self::Unauthorized => "Connection terminated",
            Self::OverCapacity => "Connection too slow: outbound buffer full",
            Self::Reconnect => "Server is shutting down",
            Self::PongTimeout => "Pong reply not received",
            Self::Malformed | Self::Channel | Self::ClientEvent | Self::Watchlist => {
                "Connection closed"
            }
        }
    }
}

/// The bytes that report `code` to a client: the `pusher:error` event (when the code has one)
/// and, for a code that closes, the close frame.
pub fn closing_bytes(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if code.sends_error_event() {
        out.extend(ws::frame::text(code.event(message).as_bytes()));
    }
    if code.closes() {
        out.extend(ws::frame::close(code.code(), message));
    }
    out
}

/// Why a subscription was refused: `pusher:subscription_error` with a status, the connection
/// stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionRefusal {
    MissingSignature,
    BadSignature,
    /// A presence subscription without `channel_data`.
    NoChannelData,
    /// `channel_data` that is not a JSON object.
    ChannelDataNotJson,
    NoUserId,
    /// `user_info` over `max_presence_member_size_kb`.
    UserInfoTooLarge {
        max_kb: usize,
    },
    /// The presence channel has `max_presence_members_per_channel` users.
    ChannelFull {
        max: usize,
    },
    /// `#server-to-user-{id}` by a connection not signed in as `{id}`.
    NotThatUser,
    /// The connection already has `max_channels_per_connection` channels.
    TooManyChannels {
        max: usize,
    },
    /// The connection sent more than `max_subscribes_per_second` subscribes this second.
    TooFast {
        max: u32,
    },
    /// The cluster state could not be reached.
    Unavailable,
}

impl SubscriptionRefusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingSignature | Self::BadSignature => 401,
            Self::NoChannelData | Self::ChannelDataNotJson | Self::NoUserId => 400,
            Self::UserInfoTooLarge { .. }
            | Self::ChannelFull { .. }
            | Self::NotThatUser
            | Self::TooManyChannels { .. } => 403,
            Self::TooFast { .. } => 429,
            Self::Unavailable => 503,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::MissingSignature => "missing auth signature".into(),
            Self::BadSignature => "invalid signature".into(),
            Self::NoChannelData => "presence channels need channel_data".into(),
            Self::ChannelDataNotJson => "channel_data is not a JSON object".into(),
            Self::NoUserId => "channel_data needs a user_id".into(),
            Self::UserInfoTooLarge { max_kb } => format!("user_info is larger than {max_kb} KB"),
            Self::ChannelFull { max } => format!("presence channel is full ({max} members)"),
            Self::NotThatUser => "only the signed-in user may subscribe".into(),
            Self::TooManyChannels { max } => {
                format!("a connection may be subscribed to at most {max} channels")
            }
            Self::TooFast { max } => format!("over {max} subscriptions per second"),
            Self::Unavailable => "presence is unavailable, try again".into(),
        }
    }

    /// The `pusher:subscription_error` event for `channel`.
    pub fn frame(&self, channel: &str) -> String {
        frames::subscription_error(channel, &self.message(), self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_spec() {
        use ErrorCode::*;
        let open = [Malformed, Channel, ClientEvent, Watchlist];
        let closed = [
            UnknownApp,
            AppDisabled,
            OverQuota,
            UnsupportedProtocol,
            Unauthorized,
            OverCapacity,
            Reconnect,
            PongTimeout,
        ];
        assert!(open.iter().all(|c| !c.closes()));
        assert!(closed.iter().all(|c| c.closes()));
        assert_eq!(ErrorCode::ALL.len(), open.len() + closed.len());
        let codes: Vec<u16> = open.iter().chain(closed.iter()).map(|c| c.code()).collect();
        assert_eq!(
            codes,
            [
                4000, 4300, 4301, 4302, 4001, 4003, 4004, 4007, 4009, 4100, 4200, 4201
            ]
        );
    }

    #[test]
    fn closing_bytes_follow_the_table() {
        let close = ws::frame::close(4100, "slow");
        assert_eq!(closing_bytes(ErrorCode::OverCapacity, "slow"), close);
        let error = ws::frame::text(ErrorCode::Channel.event("x").as_bytes());
        assert_eq!(closing_bytes(ErrorCode::Channel, "x"), error);
        let both = closing_bytes(ErrorCode::Unauthorized, "bye");
        assert!(both.len() > ws::frame::close(4009, "bye").len());
        assert!(both.ends_with(&ws::frame::close(4009, "bye")));
    }

    #[test]
    fn refusals_carry_their_status() {
        assert_eq!(SubscriptionRefusal::BadSignature.status(), 401);
        assert_eq!(SubscriptionRefusal::NoUserId.status(), 400);
        assert_eq!(SubscriptionRefusal::ChannelFull { max: 3 }.status(), 403);
        let v: serde_json::Value =
            serde_json::from_str(&SubscriptionRefusal::NotThatUser.frame("#server-to-user-1"))
                .unwrap();
        assert_eq!(v["data"]["status"], 403);
    }
}
