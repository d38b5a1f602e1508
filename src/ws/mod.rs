//! WebSocket (RFC 6455): the upgrade handshake and the frame codec. tungstenite parses and
//! formats frame headers; buffering is ours, so an idle connection holds no read buffer.

pub mod frame;
pub mod handshake;

pub use frame::{Decoder, Incoming, WsError};
