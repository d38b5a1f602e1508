//! `GET /console/api/events?app={id}[&channel={name}]`: the live event log as Server-Sent
//! Events. Each entry is one `data:` line of JSON; entries dropped because the browser read
//! too slowly are announced as `event: dropped` with the count. The stream's own task does all
//! the writing, so a slow browser only ever fills its own bounded queue.

use crate::api::ApiCore;
use crate::app::AppIdx;
use crate::bus::ShardCommand;
use crate::bus::inspect::Inspection;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::fmt::Write;
use std::rc::Rc;
use std::time::Duration;

/// A comment line this often keeps proxies from closing an idle stream, and finds a browser
/// that has gone.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A browser that takes no bytes for this long is let go.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Tells every shard which apps the console watches now, and waits until each has taken it
/// (a question queued behind it is answered), so that a stream misses no connection opened
/// after its first line.
async fn shards_follow(core: &ApiCore) {
    let apps: Box<[AppIdx]> = core.console.feed.apps().into();
    core.shards
        .send_all(|| ShardCommand::Watch(apps.clone()))
        .await;
    super::figures::ask_shards(core, Inspection::Apps).await;
}

/// Serves one event stream until the browser goes. `Err` is the answer to send instead, when
/// the console has as many streams as it may.
pub async fn stream(
    core: &Rc<ApiCore>,
    stream: &mut TcpStream,
    app: AppIdx,
    channel: Option<String>,
) -> Result<(), crate::http::ApiError> {
    let Some((watcher, woken)) = core.console.feed.watch(app, channel) else {
        let max = super::feed::MAX_WATCHERS;
        let why = format!("the console has {max} event streams open already");
        return Err(crate::http::ApiError::Unavailable(why));
    };
    shards_follow(core).await;
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                Connection: close\r\n\r\n: ringcast console\n\n";
    let mut open = stream.write_all(head.as_bytes()).await.is_ok();
    let mut text = String::new();
    while open {
        let wait = async {
            woken.recv().await;
        };
        let tick = glommio::timer::sleep(KEEP_ALIVE);
        futures_lite::future::or(wait, tick).await;
        let (entries, dropped) = watcher.take();
        text.clear();
        if dropped > 0 {
            let total = watcher.dropped_total();
            let _ = write!(
                text,
                "event: dropped\ndata: {{\"dropped\":{dropped},\"total\":{total}}}\n\n"
            );
        }
        for entry in &entries {
            let _ = write!(text, "data: {entry}\n\n");
        }
        if text.is_empty() {
            text.push_str(": keep-alive\n\n");
        }
        open = stream.write_all(text.as_bytes()).await.is_ok();
    }
    core.console.feed.unwatch(&watcher);
    shards_follow(core).await;
    Ok(())
}
