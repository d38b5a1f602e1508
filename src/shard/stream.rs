//! A client's connection as the shard reads and writes it: plain TCP, or TLS over TCP when
//! the listener it came from has `[server.tls]`. Both are byte streams to the HTTP phase and
//! the WebSocket session; only a plain socket may also be written by the shard's writer
//! directly ([`Stream::plain_fd`]), since a TLS record must be encrypted by its connection.

use super::tls_stream::TlsStream;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub enum Stream {
    Plain(TcpStream),
    /// Boxed: the TLS state is large next to a plain socket, and only TLS connections pay it.
    Tls(Box<TlsStream>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.tcp(),
        }
    }

    /// The socket the shard's writer may `send` to directly: only a plain one.
    pub fn plain_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Plain(s) => Some(s.as_raw_fd()),
            Stream::Tls(_) => None,
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.tcp().peer_addr()?)
    }

    /// Bounds each read of the underlying socket (a TLS read is made of socket reads).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        Ok(self.tcp().set_read_timeout(timeout)?)
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        Ok(self.tcp().set_write_timeout(timeout)?)
    }

    /// Ends our side: for TLS a `close_notify` first (flushed with what is still pending),
    /// then the TCP half-close.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => Ok(s.shutdown(Shutdown::Write).await?),
            Stream::Tls(s) => {
                futures_lite::future::poll_fn(|cx| s.poll_close_notify(cx)).await?;
                Ok(s.tcp().shutdown(Shutdown::Write).await?)
            }
        }
    }
}

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes a TLS connection of an accepted socket. A client that speaks plain HTTP to the TLS
/// port (its first byte is not a handshake record) gets a plain 400 saying so, and the
/// connection ends (`None`); so does one whose handshake fails or takes too long.
pub async fn accept_tls(tcp: TcpStream, config: &Arc<rustls::ServerConfig>) -> Option<Stream> {
    let handshake = async {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 0 {
            return Ok(None);
        }
        if first[0] != crate::tls::HANDSHAKE_RECORD {
            let mut tcp = tcp;
            tcp.write_all(&crate::tls::plain_http_refusal()).await?;
            let _ = tcp.shutdown(Shutdown::Write).await;
            return Ok(None);
        }
        let tls = TlsStream::accept(tcp, config.clone()).await?;
        Ok(Some(Stream::Tls(Box::new(tls))))
    };
    match glommio::timer::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(stream) => stream,
        Err(e) => {
            log::debug!("TLS handshake failed: {e}");
            None
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            // Nothing is buffered on a plain socket.
            Stream::Plain(_) => Poll::Ready(Ok(())),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}
