//! Signed Pusher HTTP API publishing over one keep-alive connection.

use crate::stream::Stream;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Credentials {
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

pub struct Publisher {
    stream: Stream,
    buf: Vec<u8>,
    target: SocketAddr,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `"{key}:{signature}"` authorizing `socket_id` on a presence channel with `channel_data`.
pub fn sign_channel(c: &Credentials, socket_id: &str, channel: &str, channel_data: &str) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(c.secret.as_bytes()).expect("any key length");
    mac.update(format!("{socket_id}:{channel}:{channel_data}").as_bytes());
    format!("{}:{}", c.key, hex::encode(mac.finalize().into_bytes()))
}

/// The request target with Pusher's signature (auth_key, auth_timestamp, auth_version, body_md5).
pub fn signed_path(c: &Credentials, method: &str, path: &str, body: &[u8]) -> String {
    let md5 = hex::encode(Md5::digest(body));
    let query = format!(
        "auth_key={}&auth_timestamp={}&auth_version=1.0&body_md5={md5}",
        c.key,
        unix_now()
    );
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(c.secret.as_bytes()).expect("any key length");
    mac.update(format!("{method}\n{path}\n{query}").as_bytes());
    format!(
        "{path}?{query}&auth_signature={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

impl Publisher {
    pub async fn connect(target: SocketAddr) -> std::io::Result<Publisher> {
        let stream = Stream::over(TcpStream::connect(target).await?).await?;
        Ok(Publisher {
            stream,
            buf: Vec::with_capacity(4096),
            target,
        })
    }

    /// POSTs a body; returns the HTTP status. Reconnects once if the server closed the connection.
    pub async fn post(&mut self, c: &Credentials, path: &str, body: &[u8]) -> std::io::Result<u16> {
        self.post_keyed(c, path, body, None).await
    }

    /// [`Publisher::post`] with an `X-Idempotency-Key` header, as the Sockudo SDKs send it.
    pub async fn post_keyed(
        &mut self,
        c: &Credentials,
        path: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> std::io::Result<u16> {
        match self.try_post(c, path, body, key).await {
            Ok(s) => Ok(s),
            Err(_) => {
                *self = Publisher::connect(self.target).await?;
                self.try_post(c, path, body, key).await
            }
        }
    }

    async fn try_post(
        &mut self,
        c: &Credentials,
        path: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> std::io::Result<u16> {
        let target = signed_path(c, "POST", path, body);
        let key_header = key.map_or(String::new(), |k| format!("X-Idempotency-Key: {k}\r\n"));
        let mut req = format!(
            "POST {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{key_header}Content-Length: {}\r\n\r\n",
            self.target,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req).await?;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    self.buf.drain(..end + 4 + len);
                    return Ok(status);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
