//! The Pusher Channels protocol (v7) as types: what clients send, what the server sends back,
//! channel names, socket ids, and the one table that maps errors to codes.

pub mod channel;
pub mod client;
pub mod errors;
pub mod frames;
pub mod socket_id;

pub use channel::{ChannelKind, ChannelName, ChannelNameError};
pub use client::{ClientMessage, ParseError};
pub use errors::ErrorCode;
pub use socket_id::SocketId;
