//! The node's one link to Redis: a dedicated thread with its own single-threaded tokio
//! runtime (the `redis` crate's async I/O is built on tokio; glommio cannot drive it), fed by
//! the API core over bounded queues. tokio's queues and oneshots are executor-agnostic, so
//! the API core awaits them on glommio.
//!
//! Two connections: one for commands, whose publishes are pipelined in the order they were
//! queued (a batch per round trip, so order holds and throughput does not wait on latency),
//! and one for pub/sub, which keeps the set of subscribed channels and re-subscribes all of
//! them after a reconnect. Redis going away never blocks the API core: a publish fails within
//! [`OP_TIMEOUT`], and interest changes made meanwhile are applied once it is back.

use futures_lite::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Longest a Redis operation may take before it counts as failed.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Publishes queued for Redis at most; beyond it a publish fails at once (503).
pub const PUBLISH_QUEUE: usize = 16_384;
/// Messages from Redis waiting for the API core at most; beyond it the link waits, and Redis
/// buffers (up to its own client-output limit, then it drops the link, which reconnects).
pub const INBOX_QUEUE: usize = 65_536;
/// Most publishes in one pipeline.
const BATCH: usize = 512;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type Done = oneshot::Sender<Result<(), String>>;

/// What the command connection carries, in order.
enum Job {
    Publish {
        channel: String,
        payload: Vec<u8>,
        done: Done,
    },
    /// A command (a state script) whose answer the caller needs. A script runs by its hash
    /// (`EVALSHA`); `script` is its code, loaded when Redis does not know it (it restarted).
    Query {
        cmd: redis::Cmd,
        script: Option<&'static str>,
        done: oneshot::Sender<Result<redis::Value, String>>,
    },
}

struct Interest {
    channel: String,
    on: bool,
    done: Done,
}

/// The API core's handle on the link.
pub struct Link {
    publish: mpsc::Sender<Job>,
    interest: mpsc::UnboundedSender<Interest>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    connected: Arc<AtomicBool>,
}

impl Link {
    /// Starts the link thread. `always` are channels subscribed for the node's whole life.
    pub fn start(url: &str, always: Vec<String>) -> Result<Link, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        // Interest changes are bounded by the channels the node serves (one per change).
        let (interest, interest_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox) = mpsc::channel(INBOX_QUEUE);
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        std::thread::Builder::new()
            .name("redis".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return log::error!("cluster: cannot start the Redis runtime: {e}"),
                };
                rt.block_on(async move {
                    let publisher = publisher(client.clone(), publish_rx);
                    let subscriber = subscriber(client, always, interest_rx, inbox_tx, flag);
                    tokio::join!(publisher, subscriber);
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(Link {
            publish,
            interest,
            inbox: tokio::sync::Mutex::new(inbox),
            connected,
        })
    }

    /// Whether the pub/sub connection is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Publishes `payload` on `channel`, after everything queued before it.
    pub async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        let job = Job::Publish {
            channel,
            payload,
            done,
        };
        self.publish
            .try_send(job)
            .map_err(|_| "too many publishes waiting for Redis".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("Redis link stopped".into()))
    }

    /// Runs `cmd` on the command connection, after everything queued before it.
    pub async fn query(&self, cmd: redis::Cmd) -> Result<redis::Value, String> {
        self.run(cmd, None).await
    }

    /// Runs `cmd`, an `EVALSHA` of `script`, loading the script first if Redis lacks it.
    pub async fn query_script(
        &self,
        cmd: redis::Cmd,
        script: &'static str,
    ) -> Result<redis::Value, String> {
        self.run(cmd, Some(script)).await
    }

    async fn run(
        &self,
        cmd: redis::Cmd,
        script: Option<&'static str>,
    ) -> Result<redis::Value, String> {
        let (done, answer) = oneshot::channel();
        self.publish
            .try_send(Job::Query { cmd, script, done })
            .map_err(|_| "too many commands waiting for Redis".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("Redis link stopped".into()))
    }

    /// Subscribes to (or leaves) `channel`; returns once Redis has confirmed it (or at once,
    /// while Redis is away: it is applied on reconnect).
    pub async fn interest(&self, channel: String, on: bool) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        self.interest
            .send(Interest { channel, on, done })
            .map_err(|_| "Redis link stopped".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("Redis link stopped".into()))
    }

    /// The next message from a subscribed channel.
    pub async fn next(&self) -> Option<Vec<u8>> {
        self.inbox.lock().await.recv().await
    }
}

/// Sends queued jobs as pipelines, in order.
async fn publisher(client: redis::Client, mut rx: mpsc::Receiver<Job>) {
    let mut conn: Option<ConnectionManager> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut result = Err(Failure::Unreachable);
        // A connection found dead on use (Redis restarted) is replaced and the batch sent once
        // more: it never reached the old Redis.
        for _ in 0..2 {
            if conn.is_none() {
                conn = connect_commands(&client).await;
            }
            result = match conn.as_mut() {
                None => Err(Failure::Unreachable),
                Some(c) => run_batch(c, &batch).await,
            };
            match &result {
                Err(Failure::Dropped(_)) => conn = None,
                Err(_) => {
                    conn = None;
                    break;
                }
                Ok(_) => break,
            }
        }
        let result = result.map_err(|f| f.to_string());
        let unknown = answer(batch, result);
        if !unknown.is_empty()
            && let Some(c) = conn.as_mut()
        {
            load_and_run(c, unknown).await;
        }
    }
}

/// Scripts Redis did not know (it restarted and lost its script cache): loads them, then runs
/// their jobs once more, in order.
async fn load_and_run(c: &mut ConnectionManager, jobs: Vec<Job>) {
    let mut load = redis::pipe();
    for job in &jobs {
        if let Job::Query {
            script: Some(code), ..
        } = job
        {
            load.cmd("SCRIPT").arg("LOAD").arg(*code).ignore();
        }
    }
    let loaded = tokio::time::timeout(OP_TIMEOUT, load.query_async::<()>(c)).await;
    let result = match loaded {
        Ok(Ok(())) => run_batch(c, &jobs).await.map_err(|f| f.to_string()),
        Ok(Err(e)) => Err(format!("Redis: loading scripts: {e}")),
        Err(_) => Err("Redis: loading scripts did not answer in time".to_string()),
    };
    // A script still unknown now is answered with the error.
    for job in answer(jobs, result) {
        if let Job::Query { done, .. } = job {
            let _ = done.send(Err("Redis: a script could not be loaded".into()));
        }
    }
}

/// Why a batch failed.
enum Failure {
    Unreachable,
    /// The connection was found dead when the batch was written.
    Dropped(String),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable => f.write_str("Redis is unreachable"),
            Failure::Dropped(e) | Failure::Other(e) => write!(f, "Redis: {e}"),
        }
    }
}

/// One pipeline: publishes answer nothing, queries one value each, in order.
async fn run_batch(c: &mut ConnectionManager, batch: &[Job]) -> Result<Vec<redis::Value>, Failure> {
    let mut pipe = redis::pipe();
    // Each command's answer (or error) goes to its own job.
    pipe.ignore_errors();
    for job in batch {
        match job {
            Job::Publish {
                channel, payload, ..
            } => {
                pipe.publish(channel, &payload[..]).ignore();
            }
            Job::Query { cmd, .. } => {
                pipe.add_command(cmd.clone());
            }
        }
    }
    match tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<Vec<redis::Value>>(c)).await {
        Ok(Ok(values)) => Ok(values),
        Ok(Err(e)) if e.is_connection_dropped() || e.is_connection_refusal() => {
            Err(Failure::Dropped(e.to_string()))
        }
        Ok(Err(e)) => Err(Failure::Other(e.to_string())),
        Err(_) => Err(Failure::Other("did not answer in time".to_string())),
    }
}

/// Hands each job its answer; returns the script jobs Redis did not know the script of.
fn answer(batch: Vec<Job>, result: Result<Vec<redis::Value>, String>) -> Vec<Job> {
    let mut values = match result {
        Ok(values) => Ok(values.into_iter()),
        Err(e) => Err(e),
    };
    let mut unknown = Vec::new();
    for job in batch {
        match job {
            Job::Publish { done, .. } => {
                let _ = done.send(values.as_ref().map(|_| ()).map_err(Clone::clone));
            }
            Job::Query { cmd, script, done } => {
                let value = match &mut values {
                    Ok(v) => v.next().ok_or_else(|| "Redis answered short".to_string()),
                    Err(e) => Err(e.clone()),
                };
                match value {
                    Ok(redis::Value::ServerError(e))
                        if e.code() == "NOSCRIPT" && script.is_some() =>
                    {
                        unknown.push(Job::Query { cmd, script, done });
                    }
                    value => {
                        let _ = done.send(value);
                    }
                }
            }
        }
    }
    unknown
}

async fn connect_commands(client: &redis::Client) -> Option<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(BACKOFF_MAX);
    let made = ConnectionManager::new_with_config(client.clone(), config);
    match tokio::time::timeout(OP_TIMEOUT, made).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    }
}

/// Keeps the pub/sub connection up and its subscriptions exact, and forwards messages.
async fn subscriber(
    client: redis::Client,
    always: Vec<String>,
    mut jobs: mpsc::UnboundedReceiver<Interest>,
    inbox: mpsc::Sender<Vec<u8>>,
    connected: Arc<AtomicBool>,
) {
    let mut channels: HashSet<String> = always.into_iter().collect();
    let mut backoff = BACKOFF_MIN;
    let mut was_connected = false;
    loop {
        let pubsub = match tokio::time::timeout(OP_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            _ => {
                // Away: record interest changes meanwhile, then try again.
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        job = jobs.recv() => match job {
                            Some(job) => {
                                record(&mut channels, &job);
                                let _ = job.done.send(Ok(()));
                            }
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let list: Vec<&String> = channels.iter().collect();
        if !list.is_empty()
            && tokio::time::timeout(OP_TIMEOUT, sink.subscribe(list))
                .await
                .map_or(true, |r| r.is_err())
        {
            continue;
        }
        backoff = BACKOFF_MIN;
        connected.store(true, Ordering::Relaxed);
        log::info!(
            "cluster: {} Redis pub/sub, {} channels subscribed",
            if was_connected {
                "reconnected to"
            } else {
                "connected to"
            },
            channels.len()
        );
        was_connected = true;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => {
                        if inbox.send(m.get_payload_bytes().to_vec()).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                job = jobs.recv() => match job {
                    Some(job) => {
                        if !apply(&mut sink, &mut channels, job).await {
                            break;
                        }
                    }
                    None => return,
                },
            }
        }
        connected.store(false, Ordering::Relaxed);
        log::warn!("cluster: lost the Redis pub/sub connection; reconnecting");
    }
}

fn record(channels: &mut HashSet<String>, job: &Interest) {
    if job.on {
        channels.insert(job.channel.clone());
    } else {
        channels.remove(&job.channel);
    }
}

/// Applies an interest change on a live connection; `false` if the connection failed.
async fn apply(sink: &mut PubSubSink, channels: &mut HashSet<String>, job: Interest) -> bool {
    record(channels, &job);
    let op = async {
        if job.on {
            sink.subscribe(&job.channel).await
        } else {
            sink.unsubscribe(&job.channel).await
        }
    };
    let result = tokio::time::timeout(OP_TIMEOUT, op).await;
    let ok = matches!(result, Ok(Ok(())));
    // While the link reconnects the change is kept and applied then, so the caller goes on.
    let _ = job.done.send(Ok(()));
    ok
}
