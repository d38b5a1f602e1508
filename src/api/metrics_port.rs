//! Everything on `metrics_port` (docs/deployment.md), served by the API executor: `GET /metrics`
//! (scrapes are rare and read only atomics, so they never touch a shard) and, when
//! `server.console_token` is set, the web console under `/console` ([`super::console`]).
//! Never the public port: operators keep this one off the internet.

use super::ApiCore;
use super::console;
use crate::http::{self, ApiError, RequestHead};
use crate::metrics::Metrics;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections on the port at once (scrapes, console pages and event streams); more are
/// closed as they arrive.
const MAX_CONNECTIONS: usize = 64;
/// Largest request body (the console's login form and test events).
const MAX_BODY: usize = 1024 * 1024;

pub async fn serve(listener: std::net::TcpListener, core: Rc<ApiCore>, metrics: Arc<Metrics>) {
    // SAFETY: the descriptor comes from a bound, listening std listener we own.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let open = Rc::new(Cell::new(0usize));
    loop {
        match listener.accept().await {
            Ok(stream) if open.get() >= MAX_CONNECTIONS => drop(stream),
            Ok(stream) => {
                open.set(open.get() + 1);
                let (core, metrics, open) = (core.clone(), metrics.clone(), open.clone());
                glommio::spawn_local(async move {
                    answer(stream, &core, &metrics).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                log::warn!("metrics: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers one request and closes (Prometheus opens a connection per scrape or keeps one;
/// either works with `Connection: close`).
async fn answer(mut stream: TcpStream, core: &Rc<ApiCore>, metrics: &Metrics) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let Ok(Some(Ok(head))) = http::read_head(&mut stream, &mut buf).await else {
        return;
    };
    let console = head.path == "/console" || head.path.starts_with("/console/");
    if console {
        let head_bytes = buf.get(..head.head_len).unwrap_or(&buf);
        let credentials = console::access::Credentials::from_head(head_bytes);
        match read_body(&mut stream, &head, buf).await {
            Ok(body) => {
                let request = console::routes::Request {
                    head,
                    credentials,
                    body,
                };
                console::routes::answer(core, request, &mut stream).await
            }
            Err(e) => write_error(&mut stream, e).await,
        }
    } else if head.method == "GET" && head.path == "/metrics" {
        let body = metrics.render();
        let bytes = http::response(200, "text/plain; version=0.0.4", body.as_bytes(), false);
        let _ = stream.write_all(&bytes).await;
    } else {
        let why = "only GET /metrics and the console (/console) here";
        write_error(&mut stream, ApiError::NotFound(why.into())).await;
    }
    let _ = stream.close().await;
}

async fn write_error(stream: &mut TcpStream, e: ApiError) {
    let r = e.response();
    let bytes = http::response(r.status, "application/json", r.body.as_bytes(), false);
    let _ = stream.write_all(&bytes).await;
}

/// The request's body: what followed the head in `buf`, and the rest read within the head's
/// deadline.
async fn read_body(
    stream: &mut TcpStream,
    head: &RequestHead,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, ApiError> {
    if head.chunked {
        return Err(ApiError::LengthRequired);
    }
    let want = head.content_length;
    if want > MAX_BODY {
        return Err(ApiError::PayloadTooLarge(format!("over {MAX_BODY} bytes")));
    }
    let mut body = buf.split_off(head.head_len.min(buf.len()));
    let deadline = Instant::now() + http::HEAD_DEADLINE;
    while body.len() < want {
        match http::read_more_by(stream, &mut body, deadline).await {
            Ok(Some(n)) if n > 0 => {}
            _ => return Err(ApiError::TooSlow),
        }
    }
    body.truncate(want);
    Ok(body)
}
