//! The server side of the RFC 6455 opening handshake.

use crate::http::{ApiError, RequestHead};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    NotAnUpgrade,
    MissingKey,
    UnsupportedVersion,
}

impl From<HandshakeError> for ApiError {
    /// The HTTP answer to a failed handshake (426 tells the client which version we speak).
    fn from(e: HandshakeError) -> Self {
        let status = match e {
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        };
        ApiError::NotAnUpgrade { status }
    }
}

/// Checks the upgrade headers and returns the `Sec-WebSocket-Accept` value.
pub fn accept_key(head: &RequestHead) -> Result<String, HandshakeError> {
    if !head.upgrade_websocket || head.method != "GET" {
        return Err(HandshakeError::NotAnUpgrade);
    }
    if head.ws_version.as_deref() != Some("13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = head.ws_key.as_deref().ok_or(HandshakeError::MissingKey)?;
    Ok(tungstenite::handshake::derive_accept_key(
        key.trim().as_bytes(),
    ))
}

/// The `101 Switching Protocols` answer.
pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}
