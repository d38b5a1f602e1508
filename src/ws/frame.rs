//! Frame decoding and encoding. The decoder works on a caller's buffer (the shard's scratch
//! memory, or a connection's partial-frame bytes) and unmasks payloads in place; it keeps
//! state only for a fragmented message in progress.

use std::io::Cursor;
use std::ops::ControlFlow;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// What one complete message or control frame is.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A complete text message (valid UTF-8), unmasked in place.
    Text(&'a mut [u8]),
    Binary,
    Ping(&'a [u8]),
    Pong,
    /// A close frame and its status code, if it carried one.
    Close(Option<u16>),
}

/// A violation that fails the connection, with the close code RFC 6455 assigns to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    MessageTooBig,
    Protocol(&'static str),
    InvalidUtf8,
}

impl WsError {
    pub const ALL: [WsError; 3] = [Self::MessageTooBig, Self::Protocol(""), Self::InvalidUtf8];

    pub const fn close_code(self) -> u16 {
        match self {
            Self::MessageTooBig => 1009,
            Self::Protocol(_) => 1002,
            Self::InvalidUtf8 => 1007,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::MessageTooBig => "message too big",
            Self::Protocol(r) => r,
            Self::InvalidUtf8 => "invalid UTF-8 in text message",
        }
    }
}

struct Fragment {
    text: bool,
    data: Vec<u8>,
}

pub struct Decoder {
    max_message: usize,
    fragment: Option<Box<Fragment>>,
}

fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Decoder {
            max_message,
            fragment: None,
        }
    }

    /// Decodes the complete frames at the start of `buf` and hands each complete message or
    /// control frame to `on`, which may stop the loop with `Break`. Returns how many bytes were
    /// consumed; the rest is the start of an incomplete frame.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        mut on: impl FnMut(Incoming<'_>) -> ControlFlow<()>,
    ) -> Result<usize, WsError> {
        let mut pos = 0;
        while pos < buf.len() {
            let mut cursor = Cursor::new(&buf[pos..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => return Err(WsError::Protocol("invalid frame header")),
            };
            if len > self.max_message as u64 {
                return Err(WsError::MessageTooBig);
            }
            let start = pos + cursor.position() as usize;
            let end = start + len as usize;
            if end > buf.len() {
                break;
            }
            let Some(mask) = header.mask else {
                return Err(WsError::Protocol("client frames must be masked"));
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(WsError::Protocol("reserved bits set"));
            }
            let payload = &mut buf[start..end];
            unmask(payload, mask);
            pos = end;
            let flow = match header.opcode {
                OpCode::Control(c) => Self::control(c, &header, payload, &mut on)?,
                OpCode::Data(d) => self.data(d, header.is_final, payload, &mut on)?,
            };
            if flow.is_break() {
                break;
            }
        }
        Ok(pos)
    }

    /// A control frame: never fragmented, at most 125 bytes.
    fn control(
        c: Control,
        header: &FrameHeader,
        payload: &mut [u8],
        on: &mut impl FnMut(Incoming<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, WsError> {
        if !header.is_final || payload.len() > 125 {
            return Err(WsError::Protocol("invalid control frame"));
        }
        Ok(match c {
            Control::Ping => on(Incoming::Ping(payload)),
            Control::Pong => on(Incoming::Pong),
            Control::Close => {
                let code = match payload.len() {
                    0 => None,
                    1 => return Err(WsError::Protocol("invalid close payload")),
                    _ => Some(u16::from_be_bytes([payload[0], payload[1]])),
                };
                if code.is_some_and(|c| !sendable_close_code(c)) {
                    return Err(WsError::Protocol("invalid close code"));
                }
                if std::str::from_utf8(payload.get(2..).unwrap_or_default()).is_err() {
                    return Err(WsError::InvalidUtf8);
                }
                on(Incoming::Close(code))
            }
            Control::Reserved(_) => return Err(WsError::Protocol("reserved opcode")),
        })
    }

    /// A data frame: a whole message, or a fragment of one kept until its final frame.
    fn data(
        &mut self,
        d: Data,
        is_final: bool,
        payload: &mut [u8],
        on: &mut impl FnMut(Incoming<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, WsError> {
        match d {
            Data::Continue => {
                let Some(fragment) = self.fragment.as_mut() else {
                    return Err(WsError::Protocol("continuation without a message"));
                };
                if fragment.data.len() + payload.len() > self.max_message {
                    return Err(WsError::MessageTooBig);
                }
                fragment.data.extend_from_slice(payload);
                match self.fragment.take() {
                    Some(mut done) if is_final => Self::emit(done.text, &mut done.data, on),
                    unfinished => {
                        self.fragment = unfinished;
                        Ok(ControlFlow::Continue(()))
                    }
                }
            }
            Data::Text | Data::Binary => {
                if self.fragment.is_some() {
                    return Err(WsError::Protocol("new message inside a fragmented one"));
                }
                let text = matches!(d, Data::Text);
                if is_final {
                    return Self::emit(text, payload, on);
                }
                self.fragment = Some(Box::new(Fragment {
                    text,
                    data: payload.to_vec(),
                }));
                Ok(ControlFlow::Continue(()))
            }
            Data::Reserved(_) => Err(WsError::Protocol("reserved opcode")),
        }
    }

    /// Hands a complete message to `on` (text only when it is valid UTF-8).
    fn emit(
        text: bool,
        payload: &mut [u8],
        on: &mut impl FnMut(Incoming<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, WsError> {
        if !text {
            return Ok(on(Incoming::Binary));
        }
        if std::str::from_utf8(payload).is_err() {
            return Err(WsError::InvalidUtf8);
        }
        Ok(on(Incoming::Text(payload)))
    }
}

/// An unmasked server frame: header then payload, in one allocation.
pub fn encode(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        opcode,
        ..FrameHeader::default()
    };
    let mut out = Vec::with_capacity(header.len(payload.len() as u64) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

pub fn text(payload: &[u8]) -> Vec<u8> {
    encode(OpCode::Data(Data::Text), payload)
}

pub fn pong(payload: &[u8]) -> Vec<u8> {
    encode(OpCode::Control(Control::Pong), payload)
}

/// Whether a close code may appear in a close frame (RFC 6455 §7.4): 1000–1003, 1007–1014,
/// and the registered and private ranges 3000–4999. 1005, 1006 and 1015 only ever describe a
/// close that had no such frame.
pub fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    // Control frames carry at most 125 bytes; a reason is cut between characters.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OpCode::Control(Control::Close), &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        unmask(&mut p, mask);
        out.extend_from_slice(&p);
        out
    }

    fn collect(d: &mut Decoder, buf: &mut [u8]) -> (Result<usize, WsError>, Vec<String>) {
        let mut seen = Vec::new();
        let r = d.decode(buf, |m| {
            seen.push(match m {
                Incoming::Text(t) => format!("text:{}", String::from_utf8_lossy(t)),
                other => format!("{other:?}"),
            });
            ControlFlow::Continue(())
        });
        (r, seen)
    }

    #[test]
    fn text_fragments_control_and_partial() {
        let mut d = Decoder::new(1024);
        let mut buf = client_frame(0x01, b"hel"); // text, not final
        buf.extend(client_frame(0x89, b"p")); // ping between fragments
        buf.extend(client_frame(0x80, b"lo")); // final continuation
        buf.extend(client_frame(0x81, b"next"));
        let full = buf.len();
        buf.extend(&client_frame(0x81, b"partial")[..4]);
        let (r, seen) = collect(&mut d, &mut buf);
        assert_eq!(r, Ok(full));
        assert_eq!(seen, vec!["Ping([112])", "text:hello", "text:next"]);
    }

    #[test]
    fn violations() {
        let mut d = Decoder::new(4);
        let mut big = client_frame(0x81, b"12345");
        assert_eq!(collect(&mut d, &mut big).0, Err(WsError::MessageTooBig));
        let mut unmasked = vec![0x81, 0x01, b'a'];
        assert_eq!(
            collect(&mut Decoder::new(9), &mut unmasked)
                .0
                .unwrap_err()
                .close_code(),
            1002
        );
        let mut bad_utf8 = client_frame(0x81, &[0xff, 0xfe]);
        assert_eq!(
            collect(&mut Decoder::new(9), &mut bad_utf8).0,
            Err(WsError::InvalidUtf8)
        );
        let mut cont = client_frame(0x80, b"x");
        assert!(collect(&mut Decoder::new(9), &mut cont).0.is_err());
        let mut d = Decoder::new(4);
        let mut frag = client_frame(0x01, b"123");
        frag.extend(client_frame(0x80, b"45"));
        assert_eq!(collect(&mut d, &mut frag).0, Err(WsError::MessageTooBig));
        for code in [1005u16, 1006, 1015, 999, 2000, 5000] {
            let mut close = client_frame(0x88, &code.to_be_bytes());
            let got = collect(&mut Decoder::new(9), &mut close).0;
            assert_eq!(got.unwrap_err().close_code(), 1002, "{code}");
        }
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0xff]);
        let mut bad_reason = client_frame(0x88, &payload);
        let got = collect(&mut Decoder::new(9), &mut bad_reason).0;
        assert_eq!(got, Err(WsError::InvalidUtf8));
    }

    #[test]
    fn encodes_server_frames() {
        assert_eq!(text(b"hi"), vec![0x81, 2, b'h', b'i']);
        assert_eq!(close(4200, ""), vec![0x88, 2, 0x10, 0x68]);
        // A reason is cut between characters: 61 two-byte characters (122 bytes) fit, not 62.
        let long = "é".repeat(70);
        assert_eq!(close(4000, &long).len(), 2 + 2 + 122);
        assert!(std::str::from_utf8(&close(4000, &long)[4..]).is_ok());
        assert_eq!(text(&[b'x'; 300])[..4], [0x81, 126, 1, 44]);
    }
}
