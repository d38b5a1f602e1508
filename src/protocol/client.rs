//! Messages a client sends, parsed at the edge into [`ClientMessage`] with simd-json.
//!
//! simd-json parses in place: it unescapes strings inside the input buffer, so the returned
//! strings borrow from it and the buffer's original bytes are gone afterwards. Whoever needs
//! the raw bytes of a field (client events relay `data` byte-for-byte) keeps a copy first.

use simd_json::prelude::*;
use simd_json::{BorrowedValue, Buffers};
use std::borrow::Cow;

#[derive(Debug, PartialEq)]
pub enum ClientMessage<'a> {
    Ping,
    Pong,
    Subscribe {
        channel: Cow<'a, str>,
        auth: Option<Cow<'a, str>>,
        channel_data: Option<Cow<'a, str>>,
    },
    Unsubscribe {
        channel: Cow<'a, str>,
    },
    Signin {
        auth: Cow<'a, str>,
        user_data: Cow<'a, str>,
    },
    /// `client-*` event; its `data` is taken raw from the original bytes by the caller.
    ClientEvent {
        event: Cow<'a, str>,
        channel: Cow<'a, str>,
    },
    /// Any other event name: ignored, as Pusher does.
    Other {
        event: Cow<'a, str>,
    },
}

/// Why a client frame was not understood; answered with `pusher:error` 4000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    InvalidJson,
    NotAnObject,
    MissingEvent,
    /// A known event whose fields are missing or of the wrong type.
    BadField {
        event: &'static str,
        field: &'static str,
    },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidJson => write!(f, "invalid JSON"),
            Self::NotAnObject => write!(f, "message must be a JSON object"),
            Self::MissingEvent => write!(f, "message has no \"event\" string"),
            Self::BadField { event, field } => write!(f, "{event}: missing or invalid \"{field}\""),
        }
    }
}

/// `data` may be an object, or (some older clients) a string holding the object's JSON.
fn data_object<'v, 'a>(v: &'v BorrowedValue<'a>) -> Option<&'v BorrowedValue<'a>> {
    v.get("data").filter(|d| d.is_object())
}

fn str_field<'a>(obj: Option<&BorrowedValue<'a>>, name: &str) -> Option<Cow<'a, str>> {
    match obj?.get(name)? {
        BorrowedValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl<'a> ClientMessage<'a> {
    /// Parses one text frame. `buffers` is scratch memory reused across calls.
    pub fn parse(input: &'a mut [u8], buffers: &mut Buffers) -> Result<Self, ParseError> {
        let value = simd_json::to_borrowed_value_with_buffers(input, buffers)
            .map_err(|_| ParseError::InvalidJson)?;
        if !value.is_object() {
            return Err(ParseError::NotAnObject);
        }
        let event = match value.get("event") {
            Some(BorrowedValue::String(s)) => s.clone(),
            _ => return Err(ParseError::MissingEvent),
        };
        let bad = |event, field| ParseError::BadField { event, field };
        let msg = match event.as_ref() {
            "pusher:ping" => ClientMessage::Ping,
            "pusher:pong" => ClientMessage::Pong,
            "pusher:subscribe" => {
                let data = data_object(&value);
                let channel =
                    str_field(data, "channel").ok_or(bad("pusher:subscribe", "channel"))?;
                // Some clients send `channel_data` as an object rather than a JSON string; the
                // signature is over the string, so only the string form can ever verify.
                ClientMessage::Subscribe {
                    channel,
                    auth: str_field(data, "auth"),
                    channel_data: str_field(data, "channel_data"),
                }
            }
            "pusher:unsubscribe" => ClientMessage::Unsubscribe {
                channel: str_field(data_object(&value), "channel")
                    .ok_or(bad("pusher:unsubscribe", "channel"))?,
            },
            "pusher:signin" => {
                let data = data_object(&value);
                ClientMessage::Signin {
                    auth: str_field(data, "auth").ok_or(bad("pusher:signin", "auth"))?,
                    user_data: str_field(data, "user_data")
                        .ok_or(bad("pusher:signin", "user_data"))?,
                }
            }
            e if e.starts_with("client-") => ClientMessage::ClientEvent {
                channel: str_field(Some(&value), "channel")
                    .ok_or(bad("client event", "channel"))?,
                event,
            },
            _ => ClientMessage::Other { event },
        };
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<String, ParseError> {
        let mut bytes = s.as_bytes().to_vec();
        let mut buffers = Buffers::default();
        ClientMessage::parse(&mut bytes, &mut buffers).map(|m| format!("{m:?}"))
    }

    #[test]
    fn parses_known_events() {
        assert_eq!(
            parse(r#"{"event":"pusher:ping","data":{}}"#).unwrap(),
            "Ping"
        );
        let s = parse(r#"{"event":"pusher:subscribe","data":{"channel":"a\"b","auth":"k:s","channel_data":"{\"user_id\":1}"}}"#).unwrap();
        assert!(
            s.contains(r#"channel: "a\"b""#)
                && s.contains(r#"auth: Some("k:s")"#)
                && s.contains("user_id"),
            "{s}"
        );
        assert!(
            parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"x"}}"#)
                .unwrap()
                .contains("Unsubscribe")
        );
        assert!(
            parse(r#"{"event":"client-x","channel":"private-a","data":{"a":1}}"#)
                .unwrap()
                .contains("ClientEvent")
        );
        assert!(parse(r#"{"event":"whatever"}"#).unwrap().contains("Other"));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(parse("not json"), Err(ParseError::InvalidJson));
        assert_eq!(parse("[1,2]"), Err(ParseError::NotAnObject));
        assert_eq!(parse(r#"{"data":{}}"#), Err(ParseError::MissingEvent));
        assert_eq!(parse(r#"{"event":5}"#), Err(ParseError::MissingEvent));
        assert!(matches!(
            parse(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(ParseError::BadField { .. })
        ));
        assert!(matches!(
            parse(r#"{"event":"pusher:subscribe","data":{"channel":1}}"#),
            Err(ParseError::BadField { .. })
        ));
        assert_eq!(
            parse(r#"{"event":"pusher:ping""#),
            Err(ParseError::InvalidJson)
        );
    }
}
