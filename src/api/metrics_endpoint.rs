//! `GET /metrics` on `metrics_port` (docs/deployment.md), served by the API executor: scrapes are rare
//! and read only atomics, so they never touch a shard.

use crate::http::{self, ApiError};
use crate::metrics::Metrics;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>) {
    // SAFETY: the descriptor comes from a bound, listening std listener we own.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(answer(stream, metrics.clone())).detach();
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
async fn answer(mut stream: TcpStream, metrics: Arc<Metrics>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let Ok(Some(Ok(head))) = http::read_head(&mut stream, &mut buf).await else {
        return;
    };
    let bytes = if head.method == "GET" && head.path == "/metrics" {
        let body = metrics.render();
        http::response(200, "text/plain; version=0.0.4", body.as_bytes(), false)
    } else {
        let r = ApiError::NotFound("only GET /metrics here".into()).response();
        http::response(r.status, "application/json", r.body.as_bytes(), false)
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.close().await;
}
