//! TLS on the public port (`[server.tls]`): `wss://` and `https://` on one listener with a
//! certificate from a test CA made here, a plain listener beside it, a plain HTTP request to
//! the TLS port, bad certificate files, and a certificate reloaded on SIGHUP while a client
//! stays connected.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tungstenite::{Message, WebSocket};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A certificate authority made for the test, and the server certificates it signs.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn pem(&self) -> String {
        pem_of("CERTIFICATE", &self.cert_der)
    }

    /// A server certificate for localhost and 127.0.0.1: (chain PEM, key PEM). The chain
    /// holds the CA too, as a deployment's `fullchain.pem` does.
    fn issue(&self, common_name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (format!("{}{}", cert.pem(), self.pem()), key.serialize_pem())
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every connection makes a full handshake: a resumed one would report the certificate
        // of the session it resumes.
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

fn pem_of(label: &str, der: &[u8]) -> String {
    use std::fmt::Write as _;
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap());
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes the chain and key into `dir`; returns their paths.
fn write_pair(dir: &Path, (chain, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, chain).unwrap();
    std::fs::write(&key_file, key).unwrap();
    (cert_file, key_file)
}

fn tls_toml(cert_file: &Path, key_file: &Path, extra: &str) -> String {
    format!(
        "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n{extra}\n{}",
        cert_file.display().to_string(),
        key_file.display().to_string(),
        dev_app_toml("")
    )
}

/// A TLS server with a certificate from a fresh test CA, and a client setup trusting it.
struct TlsServer {
    server: Server,
    config: Arc<ClientConfig>,
    _dir: TempDir,
}

fn tls_server(extra: &str) -> TlsServer {
    let ca = TestCa::new();
    let dir = temp_dir();
    let (cert, key) = write_pair(&dir.0, &ca.issue("ringcast-test"));
    TlsServer {
        server: Server::with_config(&tls_toml(&cert, &key, extra)),
        config: ca.client_config(),
        _dir: dir,
    }
}

fn connect_tls(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    StreamOwned::new(conn, tcp)
}

/// The subject common name of the certificate the server presented.
fn presented_name(tls: &mut Tls) -> String {
    // Drives the handshake to its end.
    tls.flush().unwrap();
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    let certs = tls.conn.peer_certificates().unwrap();
    let der: &[u8] = certs[0].as_ref();
    // The CN is the string after its OID (2.5.4.3) in the DER; the subject's comes after
    // the issuer's.
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(5).rposition(|w| w == oid).unwrap() + 5;
    let len = der[at + 1] as usize;
    String::from_utf8_lossy(&der[at + 2..at + 2 + len]).into_owned()
}

struct Wss {
    ws: WebSocket<Tls>,
    socket_id: String,
}

/// A TCP connection whose receive buffer is 4 KiB (the kernel's minimum rounds it up a little).
fn small_receive_buffer(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp
}

impl Wss {
    fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Wss {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        Self::connect_with(tcp, config)
    }

    fn connect_with(tcp: TcpStream, config: &Arc<ClientConfig>) -> Wss {
        let port = tcp.peer_addr().unwrap().port();
        let url = format!("wss://localhost:{port}/app/{APP_KEY}?protocol=7");
        let name = ServerName::try_from("localhost").unwrap();
        let tls = StreamOwned::new(ClientConnection::new(config.clone(), name).unwrap(), tcp);
        let (ws, _) =
            tungstenite::client::client(url.as_str(), tls).expect("WebSocket handshake over TLS");
        let mut wss = Wss {
            ws,
            socket_id: String::new(),
        };
        let ev = wss.event();
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        let data: Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
        wss.socket_id = data["socket_id"].as_str().unwrap().to_string();
        wss
    }

    fn event(&mut self) -> Value {
        loop {
            match self.ws.read().expect("a message") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn subscribe(&mut self, channel: &str) {
        let msg = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        let ev = self.event();
        assert_eq!(
            ev["event"], "pusher_internal:subscription_succeeded",
            "{ev}"
        );
    }
}

/// One HTTP/1.1 request over `stream` (`Connection: close`); the status line and body.
fn request(
    mut stream: impl Read + Write,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, String) {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    let mut raw = Vec::new();
    // A TLS peer may end without close_notify after `Connection: close`: what arrived counts.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn publish(stream: impl Read + Write, channel: &str, event: &str) -> (u16, String) {
    publish_data(stream, channel, event, "{}")
}

/// A signed publish of `data` over `stream`.
fn publish_data(
    stream: impl Read + Write,
    channel: &str,
    event: &str,
    data: &str,
) -> (u16, String) {
    let body = serde_json::json!({"name": event, "channel": channel, "data": data}).to_string();
    let path = format!("/apps/{APP_ID}/events");
    let target = signed_target(
        APP_KEY,
        APP_SECRET,
        "POST",
        &path,
        body.as_bytes(),
        &[],
        unix_now(),
    );
    request(stream, "POST", &target, body.as_bytes())
}

#[test]
fn wss_and_https_share_the_tls_port() {
    let TlsServer { server, config, .. } = tls_server("");
    assert!(server.start_line.contains("TLS"), "{}", server.start_line);

    let mut sub = Wss::connect(server.addr, &config);
    sub.subscribe("news");
    let (status, body) = publish(connect_tls(server.addr, &config), "news", "story");
    assert_eq!((status, body.as_str()), (200, "{}"));
    let ev = sub.event();
    assert_eq!(
        (ev["event"].as_str(), ev["channel"].as_str()),
        (Some("story"), Some("news"))
    );

    let (status, body) = request(connect_tls(server.addr, &config), "GET", "/up", b"");
    assert_eq!(status, 200, "{body}");
    // ALPN: the server picks HTTP/1.1 when the client offers it with h2.
    let mut alpn = (*config).clone();
    alpn.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut tls = connect_tls(server.addr, &Arc::new(alpn));
    presented_name(&mut tls);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn a_plain_request_to_the_tls_port_is_told_to_use_tls() {
    let TlsServer { server, config, .. } = tls_server("");
    let (status, body) = request(TcpStream::connect(server.addr).unwrap(), "GET", "/up", b"");
    assert_eq!(status, 400);
    assert!(body.contains("TLS"), "{body}");
    // The server keeps serving TLS clients.
    Wss::connect(server.addr, &config);
}

#[test]
fn plain_port_serves_without_tls_beside_the_tls_port() {
    let plain = free_port();
    let TlsServer { server, config, .. } = tls_server(&format!("plain_port = {plain}"));
    server.wait_log("plain (no TLS) listener");
    let plain_addr = SocketAddr::from(([127, 0, 0, 1], plain));
    let mut sub = Ws::connect(plain_addr, &format!("/app/{APP_KEY}?protocol=7"));
    sub.subscribe("news");
    let (status, _) = publish(connect_tls(server.addr, &config), "news", "story");
    assert_eq!(status, 200);
    assert_eq!(sub.expect("story")["channel"], "news");
}

#[test]
fn bad_certificate_files_fail_the_start_with_one_line_naming_the_file() {
    let ca = TestCa::new();
    let dir = temp_dir();
    let (cert, key) = write_pair(&dir.0, &ca.issue("ringcast-test"));
    let missing = dir.0.join("missing.pem");
    let other_key = dir.0.join("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let not_pem = dir.0.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for (cert_file, key_file, named) in [
        (&missing, &key, &missing),
        (&cert, &missing, &missing),
        (&not_pem, &key, &not_pem),
        (&cert, &other_key, &other_key),
    ] {
        let config = dir.0.join("bad.toml");
        std::fs::write(&config, tls_toml(cert_file, key_file, "")).unwrap();
        let out = binary()
            .arg("--config")
            .arg(&config)
            .env("RINGCAST_PORT", "0")
            .env("RINGCAST_METRICS_PORT", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("ringcast: "))
            .unwrap_or_else(|| panic!("no error line in {stderr}"));
        assert!(!out.status.success());
        assert!(line.contains(&named.display().to_string()), "{line}");
        assert!(line.contains("server.tls"), "{line}");
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_connections() {
    let ca = TestCa::new();
    let dir = temp_dir();
    let (cert, key) = write_pair(&dir.0, &ca.issue("first"));
    let server = Server::with_config(&tls_toml(&cert, &key, ""));
    let config = ca.client_config();
    assert_eq!(
        presented_name(&mut connect_tls(server.addr, &config)),
        "first"
    );
    let mut sub = Wss::connect(server.addr, &config);
    sub.subscribe("news");
    let before = sub.socket_id.clone();

    // A broken pair is refused and the old certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    server.signal(libc_sighup());
    server.wait_log("TLS certificate kept");
    assert_eq!(
        presented_name(&mut connect_tls(server.addr, &config)),
        "first"
    );

    write_pair(&dir.0, &ca.issue("second"));
    server.signal(libc_sighup());
    server.wait_log("TLS certificate reloaded");
    assert_eq!(
        presented_name(&mut connect_tls(server.addr, &config)),
        "second"
    );

    // The connection made before the reload still receives, under the same socket id.
    let (status, _) = publish(connect_tls(server.addr, &config), "news", "after-reload");
    assert_eq!(status, 200);
    assert_eq!(sub.event()["event"], "after-reload");
    assert_eq!(sub.socket_id, before);
}

fn libc_sighup() -> i32 {
    1
}

#[test]
fn large_messages_cross_tls_records_both_ways_and_a_late_reader_gets_everything_in_order() {
    let TlsServer { server, config, .. } = tls_server("");

    // Inbound: a 60 KB message spans four TLS records (16 KiB each at most).
    let mut ws = Wss::connect(server.addr, &config);
    let long = "x".repeat(60_000);
    let msg = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": long}});
    ws.ws.send(Message::text(msg.to_string())).unwrap();
    let ev = ws.event();
    assert_eq!(ev["event"], "pusher:error", "{ev}");
    assert_eq!(ev["data"]["code"], 4300, "{ev}");

    // Outbound: 20 events of 20 KB (within the 512 KiB outbox) published to a subscriber with
    // a 4 KiB receive buffer that does not read, so the server's socket fills and encrypted
    // records wait for room; then it reads them all, in order.
    let mut ws = Wss::connect_with(small_receive_buffer(server.addr), &config);
    ws.subscribe("bulk");
    let padding = "p".repeat(20_000);
    for i in 0..20 {
        let data = format!("{i}:{padding}");
        let (status, _) = publish_data(connect_tls(server.addr, &config), "bulk", "e", &data);
        assert_eq!(status, 200);
    }
    for i in 0..20 {
        let ev = ws.event();
        let data = ev["data"].as_str().unwrap();
        assert!(
            data.starts_with(&format!("{i}:")),
            "event {i}: {}",
            &data[..20]
        );
        assert_eq!(data.len(), format!("{i}:").len() + 20_000);
    }
}

#[test]
fn broken_tls_ends_only_its_own_connection() {
    let TlsServer { server, config, .. } = tls_server("");
    let mut bystander = Wss::connect(server.addr, &config);
    bystander.subscribe("news");

    // A handshake record header followed by junk: the server ends the connection.
    let mut junk = TcpStream::connect(server.addr).unwrap();
    junk.set_read_timeout(Some(WAIT)).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x10]).unwrap();
    junk.write_all(&[0xAB; 16]).unwrap();
    let mut rest = Vec::new();
    let ended = junk.read_to_end(&mut rest);
    assert!(
        !matches!(&ended, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the junk handshake was kept open: {ended:?}"
    );

    // Garbage on the record layer after a good handshake: that connection ends too.
    let mut corrupt = Wss::connect(server.addr, &config);
    corrupt
        .ws
        .get_mut()
        .sock
        .write_all(&[0x17, 0x03, 0x03, 0x00, 0x20])
        .unwrap();
    corrupt.ws.get_mut().sock.write_all(&[0xCD; 32]).unwrap();
    // The server ends it (a read that timed out would mean it kept the connection).
    loop {
        match corrupt.ws.read() {
            Ok(Message::Close(_)) => break,
            Err(tungstenite::Error::Io(e)) => {
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "the corrupted connection was kept open: {e}"
                );
                break;
            }
            Err(_) => break,
            Ok(_) => {}
        }
    }

    // Everyone else is served as before.
    let (status, _) = publish(connect_tls(server.addr, &config), "news", "still");
    assert_eq!(status, 200);
    assert_eq!(bystander.event()["event"], "still");
    Wss::connect(server.addr, &config);
}
