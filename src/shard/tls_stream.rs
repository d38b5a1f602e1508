//! A TLS connection driven through rustls' unbuffered API, so that an idle connection keeps no
//! buffer: TLS bytes are read into the executor's scratch buffer and decrypted from there,
//! records are encrypted into another scratch buffer and sent from it, and only what is left
//! over (a partial record received, ciphertext the socket would not take, plaintext the
//! caller has not read yet) is copied into the connection's own vectors, which are released
//! once empty. rustls' buffered connection keeps a 4 KiB receive buffer per connection for
//! its lifetime, which at 10k idle connections was half of a TLS connection's memory.

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Bytes read from the socket at once: a full TLS record and then some.
const READ_BYTES: usize = 64 * 1024;
/// Most plaintext encrypted per write.
const WRITE_BYTES: usize = 64 * 1024;

thread_local! {
    /// The executor's scratch buffers: each poll borrows them without awaiting.
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_BYTES]);
    static WRITE_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where the TLS session stands after processing what was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The handshake needs more bytes from the client.
    Handshaking,
    /// Application data may flow.
    Open,
    /// The client sent `close_notify`: nothing more will be read.
    PeerClosed,
}

pub struct TlsStream {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    phase: Phase,
    /// Received TLS bytes not processed yet (a partial record); empty and unallocated when
    /// idle.
    incoming: Vec<u8>,
    /// Decrypted bytes the caller has not read yet, from `plaintext_at` on.
    plaintext: Vec<u8>,
    plaintext_at: usize,
    /// Ciphertext the socket has not taken yet, from `outgoing_at` on.
    outgoing: Vec<u8>,
    outgoing_at: usize,
    /// The socket reached end of file.
    eof: bool,
    sent_close_notify: bool,
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl TlsStream {
    /// Runs the handshake on an accepted socket.
    pub async fn accept(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<TlsStream> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut tls = TlsStream {
            tcp,
            conn,
            phase: Phase::Handshaking,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            plaintext_at: 0,
            outgoing: Vec::new(),
            outgoing_at: 0,
            eof: false,
            sent_close_notify: false,
        };
        futures_lite::future::poll_fn(|cx| tls.poll_handshake(cx)).await?;
        Ok(tls)
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.phase == Phase::Handshaking {
                self.process_incoming()?;
            }
            if self.poll_send_outgoing(cx)?.is_pending() {
                return Poll::Pending;
            }
            match self.phase {
                Phase::Open => return Poll::Ready(Ok(())),
                Phase::PeerClosed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Phase::Handshaking => {}
            }
            if std::task::ready!(self.poll_receive(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Reads what the socket has and processes it; `Ready(0)` at end of file.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = std::task::ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut scratch[..]))?;
            if n == 0 {
                self.eof = true;
                return Poll::Ready(Ok(0));
            }
            if self.incoming.is_empty() {
                // The common case: whole records, decrypted straight from the scratch buffer.
                let used = self.process(&mut scratch[..n])?;
                self.incoming.extend_from_slice(&scratch[used..n]);
            } else {
                self.incoming.extend_from_slice(&scratch[..n]);
                drop(scratch);
                self.process_incoming()?;
            }
            Poll::Ready(Ok(n))
        })
    }

    /// Processes the kept partial bytes (now perhaps complete).
    fn process_incoming(&mut self) -> io::Result<()> {
        let mut incoming = std::mem::take(&mut self.incoming);
        let used = self.process(&mut incoming)?;
        incoming.drain(..used);
        if !incoming.is_empty() {
            self.incoming = incoming;
        }
        Ok(())
    }

    /// Feeds `buf` to rustls until it needs more: decrypted data goes to `plaintext`, TLS
    /// output to `outgoing`. Returns how many bytes of `buf` were used.
    fn process(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut used = 0;
        loop {
            let status = self.conn.process_tls_records(&mut buf[used..]);
            let discard = status.discard;
            let state = status.state.map_err(tls_error)?;
            let mut again = true;
            match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    let start = self.outgoing.len();
                    let mut need = 4096;
                    loop {
                        match data.encode(spare(&mut self.outgoing, need)) {
                            Ok(n) => {
                                self.outgoing.truncate(start + n);
                                break;
                            }
                            Err(EncodeError::InsufficientSize(e)) => {
                                self.outgoing.truncate(start);
                                need = e.required_size;
                            }
                            Err(e) => return Err(tls_error(e)),
                        }
                    }
                }
                // The caller sends `outgoing` when it can.
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::BlockedHandshake => again = false,
                ConnectionState::WriteTraffic(_) => {
                    if self.phase == Phase::Handshaking {
                        self.phase = Phase::Open;
                    }
                    again = false;
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.phase = Phase::PeerClosed;
                    again = false;
                }
                // Early data is not enabled in the server's configuration.
                _ => return Err(tls_error("unexpected state")),
            }
            used += discard;
            if !again {
                return Ok(used);
            }
        }
    }

    /// Sends what `outgoing` holds; `Ready` once it is all sent.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_at < self.outgoing.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.outgoing_at..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing_at += n;
        }
        self.outgoing = Vec::new();
        self.outgoing_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Encrypts `data` (or `close_notify` when `None`) into the write scratch buffer and
    /// sends it from there; only what the socket does not take is copied into `outgoing`.
    /// Returns the plaintext bytes taken.
    fn encrypt_and_send(&mut self, cx: &mut Context<'_>, data: Option<&[u8]>) -> io::Result<usize> {
        let data = data.map(|d| &d[..d.len().min(WRITE_BYTES)]);
        // Whatever rustls has queued (a key update's answer) goes first.
        self.process(&mut [])?;
        WRITE_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let status = self.conn.process_tls_records(&mut []);
            let ConnectionState::WriteTraffic(mut writer) = status.state.map_err(tls_error)? else {
                return Err(tls_error("not ready to send"));
            };
            // The scratch buffer keeps its length, so it is not zeroed again for every write.
            let mut need = data.map_or(64, |d| d.len() + d.len() / 4096 * 64 + 64);
            let n = loop {
                if scratch.len() < need {
                    scratch.resize(need, 0);
                }
                let result = match data {
                    Some(d) => writer.encrypt(d, &mut scratch[..]),
                    None => writer.queue_close_notify(&mut scratch[..]),
                };
                match result {
                    Ok(n) => break n,
                    Err(EncryptError::InsufficientSize(e)) => need = e.required_size,
                    Err(e) => return Err(tls_error(e)),
                }
            };
            let mut sent = 0;
            while self.outgoing.is_empty() && sent < n {
                match Pin::new(&mut self.tcp).poll_write(cx, &scratch[sent..n]) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(k)) => sent += k,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => break,
                }
            }
            if sent < n {
                self.outgoing.extend_from_slice(&scratch[sent..n]);
                // Behind what was already waiting: one attempt now, the rest when there is room.
                let _ = self.poll_send_outgoing(cx)?;
            }
            Ok(data.map_or(0, <[u8]>::len))
        })
    }

    /// Sends what is pending, then `close_notify` (once).
    pub fn poll_close_notify(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_outgoing(cx))?;
        if !self.sent_close_notify {
            self.sent_close_notify = true;
            self.encrypt_and_send(cx, None)?;
        }
        self.poll_send_outgoing(cx)
    }
}

/// Appends `room` zeroed bytes to `v` and returns them, to be written and then truncated to
/// what was used.
fn spare(v: &mut Vec<u8>, room: usize) -> &mut [u8] {
    let start = v.len();
    v.resize(start + room, 0);
    &mut v[start..]
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.plaintext_at < this.plaintext.len() {
                let n = buf.len().min(this.plaintext.len() - this.plaintext_at);
                buf[..n].copy_from_slice(&this.plaintext[this.plaintext_at..this.plaintext_at + n]);
                this.plaintext_at += n;
                if this.plaintext_at == this.plaintext.len() {
                    this.plaintext = Vec::new();
                    this.plaintext_at = 0;
                }
                return Poll::Ready(Ok(n));
            }
            if this.eof || this.phase == Phase::PeerClosed {
                return Poll::Ready(Ok(0));
            }
            // Something rustls wants sent (an alert, a key update) goes out on the way.
            let _ = this.poll_send_outgoing(cx)?;
            std::task::ready!(this.poll_receive(cx))?;
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Ciphertext the socket has not taken yet bounds what is encrypted next.
        std::task::ready!(this.poll_send_outgoing(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Poll::Ready(this.encrypt_and_send(cx, Some(buf)))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send_outgoing(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_close_notify(cx))?;
        Pin::new(&mut this.tcp).poll_close(cx)
    }
}
