//! TLS on the public port (`[server.tls]`): the certificate chain and key, loaded at start and
//! again on SIGHUP, and the rustls settings every shard's handshakes share.
//!
//! A reload swaps the certificate that *new* handshakes present; connections already made
//! keep their keys and are never dropped. A file that fails to load leaves the old
//! certificate in place.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The first byte of every TLS connection: a handshake record.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to a plain HTTP request on the TLS port, which then closes.
pub fn plain_http_refusal() -> Vec<u8> {
    let body = br#"{"error":"this port speaks TLS: use https:// or wss://"}"#;
    crate::http::response(400, "application/json", body, false)
}

/// The certificate new handshakes present.
#[derive(Debug)]
pub struct Certificates {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the chain and key; the error is one line naming the file at fault.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Certificates, String> {
        Ok(Certificates {
            current: RwLock::new(Arc::new(certified_key(cert_file, key_file)?)),
        })
    }

    /// Reads the files (again) and, if they load, presents the new certificate from the next
    /// handshake on.
    pub fn reload_from(&self, cert_file: &Path, key_file: &Path) -> Result<(), String> {
        let fresh = Arc::new(certified_key(cert_file, key_file)?);
        // A poisoned lock only means a panic elsewhere while swapping; the value is whole.
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = fresh;
        Ok(())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        Some(current.clone())
    }
}

/// ring: builds with a C compiler alone (aws-lc-rs also needs CMake). rustls 0.23.48 and later
/// mark it deprecated for lacking post-quantum key exchange; it still offers X25519 and the
/// NIST curves, which every Pusher client supports.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let named = |file: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", file.display());
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| named(cert_file, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(cert_file, &e))?;
    if chain.is_empty() {
        return Err(named(cert_file, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| named(key_file, &e))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| named(key_file, &format!("does not fit the certificate: {e}")))
}

/// The settings every handshake uses: TLS 1.2 and 1.3 only, ALPN `http/1.1` (the WebSocket
/// upgrade and the HTTP API are both HTTP/1.1 on this one port), the certificate from `certs`.
pub fn server_config(certs: Arc<Certificates>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
