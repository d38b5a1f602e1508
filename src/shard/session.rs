//! A WebSocket session: one task per connection that reads, decodes and hands client messages
//! to the protocol rules ([`super::rules`]), carries out what they decide, and flushes the
//! connection's outbox. Reads land in the shard's scratch buffer; only an incomplete frame is
//! copied into the connection's own (normally empty) buffer.

use super::Shard;
use super::hub::ConnKey;
use super::rules;
use super::stream::Stream;
use crate::app::App;
use crate::bus::inspect::ConnectionEvent;
use crate::metrics::ShardMetrics;
use crate::protocol::errors::closing_bytes;
use crate::protocol::{ClientMessage, ErrorCode, SocketId, frames};
use crate::ws::{self, Decoder, Incoming, WsError};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::timer::Timer;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a closing connection may take to accept its last frames.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads and writes per turn before the task yields to the others on the shard.
const TURN_BUDGET: usize = 16;
/// Client messages handled per turn: one client's flood waits for the next turn instead of
/// holding up every other connection's deliveries (a 64 KiB read may hold a thousand).
const MESSAGE_BUDGET: usize = 64;

/// Ends a connection whose close frame is out: half-close, then let the client close its
/// side (bounded in time), so the close frame is not lost to a TCP reset.
pub async fn finish(stream: &mut Stream) -> std::io::Result<()> {
    stream.shutdown_write().await?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut sink = vec![0u8; 1024];
    for _ in 0..64 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// How a session ended.
enum End {
    /// Our close frame is written: finish the TCP connection politely.
    Closed,
    /// The peer vanished or the socket failed.
    Gone,
}

/// One connection's session: its place on the shard and its I/O state.
struct Session<'a> {
    shard: &'a Rc<Shard>,
    /// The app, as of the shard's apps at `app_epoch` (a reload may change its settings).
    app: Arc<App>,
    app_epoch: u64,
    key: ConnKey,
    decoder: Decoder,
    /// Bytes not handled yet: an incomplete frame, or the messages left over when the turn's
    /// budget ran out; empty (and unallocated) otherwise.
    partial: Vec<u8>,
    /// Messages this turn may still handle.
    budget: usize,
    /// `partial` may hold complete messages, left for the next turn.
    backlog: bool,
    close_timer: Option<Timer>,
    /// A close frame is queued; nothing more is read.
    closing: bool,
    /// The code of the close frame we sent, for the disconnection metric.
    close_code: Option<u16>,
}

impl Session<'_> {
    fn send_text(&self, json: &str) {
        self.shard.send(self.key, json);
    }

    /// Queues the closing frames, bypassing the outbound limit (a slow consumer's queue was
    /// already dropped to make room for them).
    fn close_with(&mut self, code: u16, bytes: Vec<u8>) {
        self.close_code = Some(code);
        if let Some(conn) = self.shard.state.borrow_mut().hub.conn_mut(self.key) {
            conn.push_unbounded(bytes.into());
            conn.seal();
        }
        self.closing = true;
    }

    fn close_for(&mut self, code: ErrorCode, reason: &str) {
        self.close_with(code.code(), closing_bytes(code, reason));
    }

    fn on_message(&mut self, incoming: Incoming<'_>) -> ControlFlow<()> {
        self.budget = self.budget.saturating_sub(1);
        match incoming {
            Incoming::Text(bytes) => self.on_text(bytes),
            Incoming::Binary => {
                self.send_text(&ErrorCode::Malformed.event("binary frames are not supported"))
            }
            Incoming::Ping(payload) => self.shard.send_frame(self.key, ws::frame::pong(payload)),
            Incoming::Pong => {}
            Incoming::Close(code) => {
                // Echo the client's code, as RFC 6455 suggests.
                let code = code.unwrap_or(1000);
                self.close_with(code, ws::frame::close(code, ""));
            }
        }
        if self.closing {
            ControlFlow::Break(())
        } else if self.budget == 0 {
            self.backlog = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn on_text(&mut self, bytes: &mut [u8]) {
        let shard = self.shard;
        ShardMetrics::add(&shard.stats().messages_in, 1);
        let mut original = shard.message_copy.borrow_mut();
        original.clear();
        original.extend_from_slice(bytes);
        let mut buffers = shard.json_buffers.borrow_mut();
        let effects = match ClientMessage::parse(bytes, &mut buffers) {
            Ok(message) => {
                let mut state = shard.state.borrow_mut();
                state.console.received(self.app.idx);
                rules::on_message(&mut state, &self.app, self.key, message, &original)
            }
            Err(e) => {
                return self.send_text(&ErrorCode::Malformed.event(&e.to_string()));
            }
        };
        drop((original, buffers));
        if let Some(close) = shard.carry_out(self.key, effects) {
            self.close_for(close.code, &close.reason);
        }
    }

    /// Feeds `buf` to the decoder; returns how many bytes were consumed.
    fn decode(&mut self, buf: &mut [u8]) -> usize {
        // The decoder calls back into the session, so it is taken out for the call (an empty
        // decoder holds no allocation).
        let mut decoder = std::mem::replace(&mut self.decoder, Decoder::new(0));
        let used = match decoder.decode(buf, |m| self.on_message(m)) {
            Ok(used) => used,
            Err(e) => {
                self.fail(e);
                buf.len()
            }
        };
        self.decoder = decoder;
        used
    }

    /// Handles what the last turn left in `partial`, within this turn's budget.
    fn decode_backlog(&mut self) {
        self.backlog = false;
        self.decode_partial();
    }

    /// Decodes what `partial` holds and keeps the rest (an incomplete frame, or what the
    /// budget left), unless the connection is closing.
    fn decode_partial(&mut self) {
        let mut buf = std::mem::take(&mut self.partial);
        let used = self.decode(&mut buf);
        buf.drain(..used);
        if !buf.is_empty() && !self.closing {
            self.partial = buf;
        }
    }

    fn fail(&mut self, e: WsError) {
        if !self.closing {
            self.close_with(e.close_code(), ws::frame::close(e.close_code(), e.reason()));
        }
    }

    /// Reads what the socket has and processes every complete frame in it.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
    ) -> Poll<std::io::Result<usize>> {
        let shard = self.shard.clone();
        let mut scratch = shard.read_scratch.borrow_mut();
        let n = match Pin::new(&mut *stream).poll_read(cx, &mut scratch[..]) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        ShardMetrics::add(&shard.stats().bytes_in, n as u64);
        {
            let mut state = shard.state.borrow_mut();
            let now = state.now;
            if let Some(conn) = state.hub.conn_mut(self.key) {
                conn.touch(now);
            }
        }
        if self.partial.is_empty() {
            let used = self.decode(&mut scratch[..n]);
            if used < n && !self.closing {
                self.partial.extend_from_slice(&scratch[used..n]);
            }
        } else {
            self.partial.extend_from_slice(&scratch[..n]);
            drop(scratch);
            self.decode_partial();
        }
        Poll::Ready(Ok(n))
    }

    /// Writes the outbox, several frames per write. `Ready(Ok(wrote))` once it is empty.
    fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
    ) -> Poll<std::io::Result<bool>> {
        let shard = self.shard;
        let mut wrote = false;
        loop {
            let mut state = shard.state.borrow_mut();
            let Some(conn) = state.hub.conn_mut(self.key) else {
                return Poll::Ready(Ok(wrote));
            };
            if conn.outbox().is_empty() {
                drop(state);
                // A TLS connection may still hold records for the socket.
                return Pin::new(&mut *stream).poll_flush(cx).map_ok(|()| wrote);
            }
            let mut scratch = shard.write_scratch.borrow_mut();
            let result =
                conn.outbox()
                    .with_next_bytes(&mut scratch, super::WRITE_CHUNK_BYTES, |bytes| {
                        Pin::new(&mut *stream).poll_write(cx, bytes)
                    });
            match result {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    ShardMetrics::add(&shard.stats().bytes_out, n as u64);
                    conn.written(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// A close requested from elsewhere (sweeper, slow consumer, shutdown, terminate).
    fn take_requested_close(&mut self) {
        let requested = self
            .shard
            .state
            .borrow()
            .hub
            .conn(self.key)
            .and_then(|c| c.close_requested());
        if let Some(code) = requested {
            self.close_for(code, code.close_reason());
        }
    }

    /// A turn of the connection's task, marked as such on the connection: frames queued
    /// meanwhile are flushed by the turn itself, not listed for the shard's writer.
    fn poll_marked_turn(&mut self, cx: &mut Context<'_>, stream: &mut Stream) -> Poll<End> {
        self.set_in_turn(true);
        let end = self.poll_turn(cx, stream);
        self.set_in_turn(false);
        end
    }

    fn set_in_turn(&self, in_turn: bool) {
        if let Some(conn) = self.shard.state.borrow_mut().hub.conn_mut(self.key) {
            conn.set_in_turn(in_turn);
        }
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>, stream: &mut Stream) -> Poll<End> {
        if self.app_epoch != self.shard.apps.epoch() {
            // A reload changed the apps' settings: the rules see the new ones from now on.
            self.app = self.shard.apps.now().get(self.app.idx).clone();
            self.app_epoch = self.shard.apps.epoch();
        }
        // The API core is behind: no more client messages until it catches up.
        let mut held_back = false;
        self.budget = MESSAGE_BUDGET;
        for _ in 0..TURN_BUDGET {
            let mut progress = false;
            if !self.closing && self.shard.reports.is_full() {
                held_back = true;
            } else if !self.closing && self.budget > 0 && self.backlog {
                self.decode_backlog();
                progress = true;
            } else if !self.closing && self.budget > 0 {
                match self.poll_read(cx, stream) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(End::Gone),
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Pending => {}
                }
            }
            if !self.closing {
                self.take_requested_close();
            }
            match self.poll_flush(cx, stream) {
                Poll::Ready(Ok(wrote)) => {
                    if self.closing {
                        return Poll::Ready(End::Closed);
                    }
                    progress |= wrote;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(End::Gone),
                Poll::Pending => {
                    if self.closing {
                        // A client that stopped reading must not hold the connection forever.
                        let timer = self
                            .close_timer
                            .get_or_insert_with(|| Timer::new(CLOSE_FLUSH_TIMEOUT));
                        if Pin::new(timer).poll(cx).is_ready() {
                            return Poll::Ready(End::Gone);
                        }
                    }
                }
            }
            if !progress {
                if let Some(conn) = self.shard.state.borrow_mut().hub.conn_mut(self.key) {
                    conn.register_waker(cx.waker());
                }
                if held_back {
                    self.shard.reports.wait_for_room(self.key, cx.waker());
                }
                return Poll::Pending;
            }
            if self.budget == 0 && !self.closing {
                break;
            }
        }
        // Out of budget: let the shard's other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The session task: serves an upgraded connection until it closes, then gives back its
/// place in the app's connection quota. `leftover` holds bytes the client sent right after its
/// handshake.
pub async fn serve(shard: Rc<Shard>, mut stream: Stream, place: Place, leftover: Vec<u8>) {
    if let Err(e) = run(&shard, &mut stream, &place.app, leftover).await {
        log::debug!("shard {}: session ended: {e}", shard.id);
    }
    place.give_back(&shard);
}

/// A connection's place in its app's connection quota: on this node, and (for an app with a
/// limit, in a cluster) in the cluster's count.
pub struct Place {
    pub app: Arc<App>,
    pub in_cluster: bool,
}

impl Place {
    pub fn give_back(self, shard: &Shard) {
        self.app.release_connection();
        if self.in_cluster {
            shard.disconnected_in_cluster(self.app.idx);
        }
    }
}

async fn run(
    shard: &Rc<Shard>,
    stream: &mut Stream,
    app: &Arc<App>,
    leftover: Vec<u8>,
) -> std::io::Result<()> {
    let socket_id: SocketId = shard.next_socket_id();
    let key = {
        let mut state = shard.state.borrow_mut();
        let now = state.now;
        let key = state.hub.add(socket_id, app.idx, now);
        if let (Some(conn), Some(fd)) = (state.hub.conn_mut(key), stream.plain_fd()) {
            conn.set_socket(fd);
        }
        key
    };
    shard.stats().connected();
    let app_idx = app.idx;
    shard.connection_event(ConnectionEvent::Opened {
        app: app_idx,
        socket: socket_id,
    });
    let mut session = Session {
        shard,
        app: app.clone(),
        app_epoch: shard.apps.epoch(),
        key,
        decoder: Decoder::new(shard.config.max_message_kb * 1024),
        partial: Vec::new(),
        close_timer: None,
        closing: false,
        close_code: None,
        budget: MESSAGE_BUDGET,
        backlog: false,
    };
    session.send_text(&frames::connection_established(
        socket_id,
        shard.config.activity_timeout,
    ));
    if !leftover.is_empty() {
        session.partial = leftover;
        session.decode_partial();
    }
    let end = futures_lite::future::poll_fn(|cx| session.poll_marked_turn(cx, stream)).await;
    let gone = shard.state.borrow_mut().hub.remove(key);
    if let Some(conn) = gone {
        shard.carry_out(key, rules::on_disconnect(&conn));
    }
    // A close we queued counts even if the client vanished before reading it (4100, 4201 …).
    shard.stats().disconnected(session.close_code);
    shard.connection_event(ConnectionEvent::Closed {
        app: app_idx,
        socket: socket_id,
        code: session.close_code,
    });
    match end {
        End::Closed => finish(stream).await,
        End::Gone => Ok(()),
    }
}
