//! A generator connection: plain TCP, or TLS over TCP when `--tls-ca` names the CA that signed
//! the server's certificate (then WebSocket clients use `wss://` and publishers `https://`).

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// How connections are made for this run: set once from the arguments.
static TLS: OnceLock<Option<(TlsConnector, ServerName<'static>)>> = OnceLock::new();

/// With a CA file, every connection of this run speaks TLS and checks the server's
/// certificate against that CA for `name`.
pub fn use_tls(ca_file: Option<&str>, name: &str) -> Result<(), String> {
    let tls = match ca_file {
        None => None,
        Some(file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("{file}: {e}"))?
            {
                roots
                    .add(cert.map_err(|e| format!("{file}: {e}"))?)
                    .map_err(|e| format!("{file}: {e}"))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
            Some((TlsConnector::from(Arc::new(config)), name))
        }
    };
    TLS.set(tls).map_err(|_| "TLS already chosen".to_string())
}

impl Stream {
    /// Starts TLS on `tcp` when this run uses it.
    pub async fn over(tcp: TcpStream) -> io::Result<Stream> {
        tcp.set_nodelay(true)?;
        match TLS.get().and_then(Option::as_ref) {
            None => Ok(Stream::Plain(tcp)),
            Some((connector, name)) => Ok(Stream::Tls(Box::new(
                connector.connect(name.clone(), tcp).await?,
            ))),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
