//! A TCP connection's HTTP phase on a shard: read request heads (keep-alive), upgrade
//! `/app/{key}` to a WebSocket session, answer `/up` locally, and hand every other request
//! to the API core.

use super::Shard;
use super::session::{self, Place};
use super::stream::{self, Stream};
use crate::app::App;
use crate::http::{self, ApiError, ApiRequest, ApiResponse, RequestHead, signed};
use crate::protocol::ErrorCode;
use crate::protocol::errors::closing_bytes;
use crate::ws::handshake;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an HTTP client may sit idle between or inside requests.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a request body may take to arrive once its head has (4 MiB at 140 KB/s).
const BODY_DEADLINE: Duration = Duration::from_secs(30);
/// Largest body read before the request's signature is checked (on the shard, from its head):
/// anyone may send this much, only an app's backend more.
const UNSIGNED_BODY_BYTES: usize = 64 * 1024;
/// Longest one write of an HTTP answer may wait for a client that does not read.
const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the HTTP phase ended with.
enum Next {
    Done,
    /// An accepted WebSocket upgrade: the session continues in a task of its own, so that
    /// none of the HTTP phase's state stays allocated for the connection's lifetime.
    Session {
        place: Place,
        leftover: Vec<u8>,
    },
}

/// A connection's place among the shard's HTTP-phase connections, given back when dropped.
struct HttpSlot<'a>(&'a Shard);

impl<'a> HttpSlot<'a> {
    fn take(shard: &'a Shard) -> Option<HttpSlot<'a>> {
        let n = shard.http_connections.get();
        if n >= shard.http_share {
            return None;
        }
        shard.http_connections.set(n + 1);
        Some(HttpSlot(shard))
    }
}

impl Drop for HttpSlot<'_> {
    fn drop(&mut self) {
        let n = self.0.http_connections.get();
        self.0.http_connections.set(n.saturating_sub(1));
    }
}

/// Serves an accepted connection: the TLS handshake first when its listener has `tls`.
pub async fn serve(
    shard: Rc<Shard>,
    tcp: TcpStream,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let Some(slot) = HttpSlot::take(&shard) else {
        let mut stream = Stream::Plain(tcp);
        let busy = ApiError::Unavailable("too many HTTP connections; try again".into());
        let _ = stream.set_write_timeout(Some(HTTP_WRITE_TIMEOUT));
        let _ = respond(&shard, &mut stream, &busy.response(), false, JSON).await;
        return;
    };
    let mut stream = match tls {
        None => Stream::Plain(tcp),
        Some(config) => match stream::accept_tls(tcp, &config).await {
            Some(stream) => stream,
            None => return,
        },
    };
    let next = serve_http(&shard, &mut stream).await;
    drop(slot);
    match next {
        Ok(Next::Done) => {}
        Ok(Next::Session { place, leftover }) => {
            let queue = shard.sessions_queue;
            // The place is given back by the session, or here if it cannot start.
            let (app, in_cluster) = (place.app.clone(), place.in_cluster);
            let task = session::serve(shard.clone(), stream, place, leftover);
            match glommio::spawn_local_into(task, queue) {
                Ok(task) => {
                    task.detach();
                }
                Err(e) => {
                    log::warn!("cannot start a session: {e}");
                    Place { app, in_cluster }.give_back(&shard);
                }
            }
        }
        Err(e) => log::debug!("shard {}: connection ended: {e}", shard.id),
    }
}

/// How an answer's body is typed.
const JSON: &str = "application/json";

async fn respond(
    shard: &Shard,
    stream: &mut Stream,
    r: &ApiResponse,
    keep_alive: bool,
    content_type: &str,
) -> std::io::Result<()> {
    shard.stats().http_answered(r.status);
    let bytes = http::response(r.status, content_type, r.body.as_bytes(), keep_alive);
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Answers `error` and ends the connection.
async fn refuse(shard: &Shard, stream: &mut Stream, error: ApiError) -> std::io::Result<Next> {
    respond(shard, stream, &error.response(), false, JSON).await?;
    Ok(Next::Done)
}

async fn serve_http(shard: &Rc<Shard>, stream: &mut Stream) -> std::io::Result<Next> {
    stream.set_read_timeout(Some(HTTP_IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_WRITE_TIMEOUT))?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = match http::read_head(stream, &mut buf).await? {
            None => return Ok(Next::Done),
            Some(Err(e)) => return refuse(shard, stream, e.into()).await,
            Some(Ok(head)) => head,
        };
        buf.drain(..head.head_len);
        if let Some(key) = head.path.strip_prefix("/app/") {
            // `/app/{key}` and nothing below it.
            if key.is_empty() || key.contains('/') {
                let e = ApiError::NotFound(format!("no route for {}", head.path));
                return refuse(shard, stream, e).await;
            }
            if !may_connect(shard, stream) {
                let why = "too many connections from this address; retry in a second";
                return refuse(shard, stream, ApiError::TooManyRequests(why.into())).await;
            }
            let key = key.to_string();
            return upgrade(shard, stream, head, key, buf).await;
        }
        let keep_alive = head.keep_alive;
        // Every body is read, even one `/up` ignores: the next request starts after it.
        let body = match read_body(shard, stream, &mut buf, &head).await? {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(Next::Done),
            Err(e) => return refuse(shard, stream, e).await,
        };
        let (response, content_type) = if head.path == "/up" || head.path.starts_with("/up/") {
            // A healthy `/up` answers in plain text, as load balancers expect.
            let r = health(shard, &head.path);
            let plain = r.status == 200;
            (r, if plain { "text/plain" } else { JSON })
        } else {
            (shard.call_api(request(head, body)).await, JSON)
        };
        respond(shard, stream, &response, keep_alive, content_type).await?;
        if !keep_alive {
            return Ok(Next::Done);
        }
    }
}

/// Reads the request's body into memory; `Ok(Ok(None))` when the client went away.
async fn read_body(
    shard: &Shard,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> std::io::Result<Result<Option<Vec<u8>>, ApiError>> {
    if head.chunked {
        return Ok(Err(ApiError::LengthRequired));
    }
    if head.content_length > http::MAX_BODY_BYTES {
        let e = ApiError::PayloadTooLarge("request body is too large".into());
        return Ok(Err(e));
    }
    // A large body is read only for a request whose head is signed.
    if head.content_length > UNSIGNED_BODY_BYTES {
        let now = crate::clock::unix_s();
        let (method, path, query) = (&head.method, &head.path, &head.query);
        if let Err(e) = signed::check_head(&shard.apps.now(), method, path, query, now) {
            return Ok(Err(e));
        }
    }
    let deadline = Instant::now() + BODY_DEADLINE;
    while buf.len() < head.content_length {
        match http::read_more_by(stream, buf, deadline).await? {
            None => return Ok(Err(ApiError::TooSlow)),
            Some(0) => return Ok(Ok(None)),
            Some(_) => {}
        }
    }
    Ok(Ok(Some(buf.drain(..head.content_length).collect())))
}

fn request(head: RequestHead, body: Vec<u8>) -> ApiRequest {
    ApiRequest {
        method: head.method,
        path: head.path,
        query: head.query,
        body,
        idempotency_key: head.idempotency_key,
    }
}

fn health(shard: &Shard, path: &str) -> ApiResponse {
    match path.strip_prefix("/up/") {
        Some(id) if shard.apps.now().by_id(id).is_none() => {
            ApiError::NotFound("unknown app".into()).response()
        }
        _ if shard.stopping.get() => ApiError::Unavailable("shutting down".into()).response(),
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

/// Whether the client's address may make one more WebSocket connection this second.
fn may_connect(shard: &Shard, stream: &Stream) -> bool {
    if shard.connects_share == 0 {
        return true;
    }
    let Ok(peer) = stream.peer_addr() else {
        return true;
    };
    let mut state = shard.state.borrow_mut();
    let now = state.now;
    state.connects.take(peer.ip(), now, shard.connects_share)
}

/// The app a WebSocket upgrade is for, or the code it is refused with.
fn admit(shard: &Shard, key: &str, head: &RequestHead) -> Result<Arc<App>, (ErrorCode, String)> {
    let refuse = |code: ErrorCode| Err((code, code.close_reason().to_string()));
    let apps = shard.apps.now();
    match apps.by_key(key) {
        None => Err((
            ErrorCode::UnknownApp,
            format!("App key {key} not in this cluster"),
        )),
        Some(app) if !app.config.enabled => refuse(ErrorCode::AppDisabled),
        Some(_) if !matches!(protocol_version(&head.query), Some(v) if v >= 5) => {
            refuse(ErrorCode::UnsupportedProtocol)
        }
        Some(_) if shard.stopping.get() => refuse(ErrorCode::Reconnect),
        Some(_) if shard.at_capacity() => refuse(ErrorCode::OverCapacity),
        // Last: a refusal after this point would leak the counted connection.
        Some(app) if !app.try_acquire_connection() => refuse(ErrorCode::OverQuota),
        Some(app) => Ok(app.clone()),
    }
}

/// [`admit`], and in a cluster, for an app that limits its connections, the cluster's count.
async fn admit_anywhere(
    shard: &Shard,
    key: &str,
    head: &RequestHead,
) -> Result<Place, (ErrorCode, String)> {
    let app = admit(shard, key, head)?;
    let in_cluster = shard.state.borrow().clustered && app.config.max_connections > 0;
    if in_cluster && let Err(refused) = shard.admit_in_cluster(app.idx).await {
        app.release_connection();
        return Err(refused);
    }
    Ok(Place { app, in_cluster })
}

async fn upgrade(
    shard: &Rc<Shard>,
    stream: &mut Stream,
    head: RequestHead,
    key: String,
    leftover: Vec<u8>,
) -> std::io::Result<Next> {
    let accept = match handshake::accept_key(&head) {
        Ok(a) => a,
        Err(e) => return refuse(shard, stream, e.into()).await,
    };
    shard.stats().http_answered(101);
    stream
        .write_all(&handshake::switching_protocols(&accept))
        .await?;
    stream.flush().await?;
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    match admit_anywhere(shard, &key, &head).await {
        Ok(place) => {
            // Bytes sent right after the handshake go to the session; otherwise the HTTP
            // read buffer is given back rather than kept for the connection's lifetime.
            let leftover = if leftover.is_empty() {
                Vec::new()
            } else {
                leftover
            };
            Ok(Next::Session { place, leftover })
        }
        Err((code, message)) => {
            stream.write_all(&closing_bytes(code, &message)).await?;
            session::finish(stream).await.map(|_| Next::Done)
        }
    }
}
