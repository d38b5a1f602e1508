//! A minimal Pusher WebSocket client for load: a hand-rolled handshake and server-frame
//! parser (server frames are unmasked and simple), so the generator spends its time on the
//! sockets rather than on a general-purpose client library.

use crate::publisher::{Credentials, sign_channel};
use crate::stream::Stream;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// A server frame: opcode and payload range within the buffer.
pub struct ServerFrame {
    pub opcode: u8,
    pub start: usize,
    pub end: usize,
}

/// Parses one complete unmasked frame at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Option<ServerFrame> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < header + len {
        return None;
    }
    Some(ServerFrame {
        opcode,
        start: header,
        end: header + len,
    })
}

/// A masked client text frame (a zero mask: legal, and the payload stays readable).
pub fn client_text(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// Reads frames until one whose text contains `needle` and returns its payload; one that
/// contains `refusal` (if given) fails the wait. Bytes past it stay in `buf`.
pub async fn read_until(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    needle: &str,
    refusal: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    loop {
        while let Some(f) = parse_frame(buf) {
            if f.opcode == 8 {
                return Err(std::io::Error::other("server closed the connection"));
            }
            let payload = buf[f.start..f.end].to_vec();
            buf.drain(..f.end);
            if f.opcode != 1 {
                continue;
            }
            if refusal.is_some_and(|r| contains(&payload, r.as_bytes())) {
                return Err(std::io::Error::other(
                    String::from_utf8_lossy(&payload).into_owned(),
                ));
            }
            if contains(&payload, needle.as_bytes()) {
                return Ok(payload);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Finds `key` and parses the number after it.
pub fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let pos = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = hay[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&hay[pos..pos + digits])
        .ok()?
        .parse()
        .ok()
}

/// The socket id in a `pusher:connection_established` payload (escaped inside its data string).
pub fn socket_id(established: &[u8]) -> Option<String> {
    let key = br#"socket_id\":\""#;
    let start = established.windows(key.len()).position(|w| w == key)? + key.len();
    let len = established[start..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    Some(String::from_utf8_lossy(&established[start..start + len]).into_owned())
}

/// Connects from `source`, completes the WebSocket handshake and reads the socket id.
pub async fn connect(
    target: SocketAddr,
    source: IpAddr,
    key: &str,
) -> std::io::Result<(Stream, Vec<u8>, String)> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = Stream::over(socket.connect(target).await?).await?;
    let req = format!(
        "GET /app/{key}?protocol=7&client=ringcast-loadgen&version=0.1&flash=false HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("upgrade refused"));
    }
    buf.drain(..head_end);
    let established =
        read_until(&mut stream, &mut buf, "pusher:connection_established", None).await?;
    let id = socket_id(&established).ok_or_else(|| std::io::Error::other("no socket id"))?;
    Ok((stream, buf, id))
}

/// Subscribes to a public channel and waits for the confirmation.
pub async fn subscribe(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    channel: &str,
) -> std::io::Result<()> {
    let msg = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#);
    stream.write_all(&client_text(msg.as_bytes())).await?;
    read_until(stream, buf, "subscription_succeeded", None)
        .await
        .map(|_| ())
}

/// Subscribes to a presence channel as `user_id` (signing `channel_data` with the app secret)
/// and waits for the confirmation; a refusal fails.
pub async fn subscribe_presence(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    creds: &Credentials,
    socket_id: &str,
    channel: &str,
    user_id: &str,
) -> std::io::Result<()> {
    let channel_data = format!(r#"{{"user_id":"{user_id}"}}"#);
    let auth = sign_channel(creds, socket_id, channel, &channel_data);
    let msg = serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth,"channel_data":channel_data}});
    stream
        .write_all(&client_text(msg.to_string().as_bytes()))
        .await?;
    let confirmation = format!(r#"subscription_succeeded","channel":"{channel}""#);
    let wait = read_until(stream, buf, &confirmation, Some("error"));
    match tokio::time::timeout(std::time::Duration::from_secs(30), wait).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Leaves a channel (no reply is due).
pub async fn unsubscribe(stream: &mut Stream, channel: &str) -> std::io::Result<()> {
    let msg = format!(r#"{{"event":"pusher:unsubscribe","data":{{"channel":"{channel}"}}}}"#);
    stream.write_all(&client_text(msg.as_bytes())).await
}
