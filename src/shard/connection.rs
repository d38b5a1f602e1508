//! A TCP connection's HTTP phase on a shard: read request heads (keep-alive), upgrade
//! `/app/{key}` to a WebSocket session, answer `/up` locally, and hand every other request
//! to the API core.

use super::Shard;
use super::session;
use crate::app::App;
use crate::http::{self, ApiRequest, ApiResponse, RequestHead};
use crate::protocol::ErrorCode;
use crate::ws::handshake;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long an HTTP client may sit idle between or inside requests.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the HTTP phase ended with.
enum Next {
    Done,
    /// An accepted WebSocket upgrade: the session continues in a task of its own, so that
    /// none of the HTTP phase's state stays allocated for the connection's lifetime.
    Session {
        app: Arc<App>,
        leftover: Vec<u8>,
    },
}

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    match serve_http(&shard, &mut stream).await {
        Ok(Next::Done) => {}
        Ok(Next::Session { app, leftover }) => {
            let queue = shard.sessions_queue;
            match glommio::spawn_local_into(session::serve(shard, stream, app, leftover), queue) {
                Ok(task) => {
                    task.detach();
                }
                Err(e) => log::warn!("cannot start a session: {e}"),
            }
        }
        Err(e) => log::debug!("shard {}: connection ended: {e}", shard.id),
    }
}

/// Reads into `buf` (heap memory, freed when the connection upgrades or ends).
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let len = buf.len();
    buf.resize(len + 4096, 0);
    let n = stream.read(&mut buf[len..]).await;
    buf.truncate(len + *n.as_ref().unwrap_or(&0));
    n
}

async fn respond(
    shard: &Shard,
    stream: &mut TcpStream,
    r: &ApiResponse,
    keep_alive: bool,
) -> std::io::Result<()> {
    shard.stats().http_answered(r.status);
    let bytes = http::response(r.status, "application/json", r.body.as_bytes(), keep_alive);
    stream.write_all(&bytes).await
}

async fn serve_http(shard: &Rc<Shard>, stream: &mut TcpStream) -> std::io::Result<Next> {
    stream.set_read_timeout(Some(HTTP_IDLE_TIMEOUT))?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = loop {
            match http::parse_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) => {
                    if read_more(stream, &mut buf).await? == 0 {
                        return Ok(Next::Done);
                    }
                }
                Err(e) => {
                    let r = ApiResponse::error(e.status(), "bad_request", "malformed HTTP request");
                    return respond(shard, stream, &r, false).await.map(|_| Next::Done);
                }
            }
        };
        buf.drain(..head.head_len);

        if let Some(key) = head.path.strip_prefix("/app/") {
            let key = key.to_string();
            return upgrade(shard, stream, head, key, buf).await;
        }
        if head.path == "/up" || head.path.starts_with("/up/") {
            let r = health(shard, &head.path);
            shard.stats().http_answered(r.status);
            let content_type = if r.status == 200 {
                "text/plain"
            } else {
                "application/json"
            };
            stream
                .write_all(&http::response(
                    r.status,
                    content_type,
                    r.body.as_bytes(),
                    head.keep_alive,
                ))
                .await?;
            if !head.keep_alive {
                return Ok(Next::Done);
            }
            continue;
        }

        if head.chunked {
            let r = ApiResponse::error(411, "length_required", "send the body with Content-Length");
            return respond(shard, stream, &r, false).await.map(|_| Next::Done);
        }
        if head.content_length > http::MAX_BODY_BYTES {
            let r = ApiResponse::error(413, "payload_too_large", "request body is too large");
            return respond(shard, stream, &r, false).await.map(|_| Next::Done);
        }
        while buf.len() < head.content_length {
            if read_more(stream, &mut buf).await? == 0 {
                return Ok(Next::Done);
            }
        }
        let body: Vec<u8> = buf.drain(..head.content_length).collect();
        let request = ApiRequest {
            method: head.method,
            path: head.path,
            query: head.query,
            body,
            idempotency_key: head.idempotency_key,
        };
        let response = shard.call_api(request).await;
        respond(shard, stream, &response, head.keep_alive).await?;
        if !head.keep_alive {
            return Ok(Next::Done);
        }
    }
}

fn health(shard: &Shard, path: &str) -> ApiResponse {
    match path.strip_prefix("/up/") {
        Some(id) if shard.apps.by_id(id).is_none() => {
            ApiResponse::error(404, "not_found", "unknown app")
        }
        _ if shard.stopping.get() => ApiResponse::error(503, "unavailable", "shutting down"),
        _ => ApiResponse::json(200, "OK"),
    }
}

/// The protocol version a client asks for; missing means 7.
fn protocol_version(query: &str) -> Option<u32> {
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("protocol=") {
            return v.parse().ok();
        }
    }
    Some(7)
}

async fn upgrade(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    head: RequestHead,
    key: String,
    leftover: Vec<u8>,
) -> std::io::Result<Next> {
    let accept = match handshake::accept_key(&head) {
        Ok(a) => a,
        Err(e) => {
            let r = ApiResponse::error(e.status(), "bad_request", "expected a WebSocket upgrade");
            return respond(shard, stream, &r, false).await.map(|_| Next::Done);
        }
    };
    shard.stats().http_answered(101);
    stream
        .write_all(&handshake::switching_protocols(&accept))
        .await?;
    stream.set_read_timeout(None)?;

    let app = match shard.apps.by_key(&key) {
        None => Err((
            ErrorCode::UnknownApp,
            format!("App key {key} not in this cluster"),
        )),
        Some(app) if !app.config.enabled => Err((ErrorCode::AppDisabled, "App is disabled".into())),
        Some(_) if !matches!(protocol_version(&head.query), Some(v) if v >= 5) => Err((
            ErrorCode::UnsupportedProtocol,
            "Unsupported protocol version".into(),
        )),
        Some(_) if shard.stopping.get() => {
            Err((ErrorCode::Reconnect, "Server is shutting down".into()))
        }
        // Last: a refusal after this point would leak the counted connection.
        Some(app) if !app.try_acquire_connection() => Err((
            ErrorCode::OverQuota,
            "Application is over connection quota".into(),
        )),
        Some(app) => Ok(app.clone()),
    };
    match app {
        Ok(app) => {
            let leftover = if leftover.is_empty() {
                Vec::new()
            } else {
                leftover
            };
            Ok(Next::Session { app, leftover })
        }
        Err((code, message)) => {
            stream
                .write_all(&session::closing_frames(code, &message))
                .await?;
            session::finish(stream).await.map(|_| Next::Done)
        }
    }
}
