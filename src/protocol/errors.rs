//! The Pusher error and close codes (SPEC §2), in one table: each code says whether the
//! connection is closed after it and whether a `pusher:error` event precedes the close.

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
    pub fn code(self) -> u16 {
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
        let codes: Vec<u16> = open.iter().chain(closed.iter()).map(|c| c.code()).collect();
        assert_eq!(
            codes,
            [
                4000, 4300, 4301, 4302, 4001, 4003, 4004, 4007, 4009, 4100, 4200, 4201
            ]
        );
    }
}
