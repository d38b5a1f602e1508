//! A webhook receiver for tests: a real HTTP/1.1 server on a free port that checks every
//! request's `X-Pusher-Key` and `X-Pusher-Signature` (panicking the test on a bad one), records
//! it, and answers with the next status of a script (then 200).

use super::{WAIT, hmac_hex};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
    /// What was wrong with its key, signature or content type, if anything.
    pub invalid: Option<String>,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn events(&self) -> Vec<Value> {
        self.body["events"].as_array().cloned().unwrap_or_default()
    }
}

/// Holds every request of a receiver unanswered until opened.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
    /// Requests that have arrived and wait.
    waiting: Mutex<usize>,
    arrived: std::sync::Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Waits (at most [`WAIT`]) until a request is held at the gate.
    pub fn until_waiting(&self) {
        let waiting = self.waiting.lock().unwrap();
        let (waiting, _) = self
            .arrived
            .wait_timeout_while(waiting, WAIT, |n| *n == 0)
            .unwrap();
        assert!(*waiting > 0, "no webhook request arrived at the gate");
    }

    fn pass(&self) {
        *self.waiting.lock().unwrap() += 1;
        self.arrived.notify_all();
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_while(open, |open| !*open).unwrap());
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    deliveries: mpsc::Receiver<Delivery>,
    /// Events already taken from deliveries but not yet asked for.
    pending: VecDeque<Value>,
}

impl Receiver {
    /// Listens on a free port; `script` lists the statuses of the first requests.
    pub fn start(key: &str, secret: &str, script: &[u16]) -> Receiver {
        let open = Arc::new(Gate::default());
        open.open();
        Receiver::start_gated(key, secret, script, open)
    }

    /// [`Receiver::start`], holding each request's answer until `gate` opens.
    pub fn start_gated(key: &str, secret: &str, script: &[u16], gate: Arc<Gate>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (key, secret) = (key.to_string(), secret.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (tx, script) = (tx.clone(), script.clone());
                let (key, secret, gate) = (key.clone(), secret.clone(), gate.clone());
                std::thread::spawn(move || serve(stream, &key, &secret, &script, &tx, &gate));
            }
        });
        Receiver {
            addr,
            deliveries: rx,
            pending: VecDeque::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// The next request (waits at most [`WAIT`]).
    pub fn delivery(&self) -> Delivery {
        let d = self
            .deliveries
            .recv_timeout(WAIT)
            .expect("no webhook arrived in time");
        assert_eq!(d.invalid, None, "a webhook failed verification");
        d
    }

    /// The next event of an accepted request, in order.
    pub fn event(&mut self) -> Value {
        self.event_where(|_| true)
    }

    /// The first accepted event not yet taken that matches `keep`; the others stay, in order,
    /// for later calls.
    pub fn event_where(&mut self, keep: impl Fn(&Value) -> bool) -> Value {
        let mut looked = 0;
        loop {
            if let Some(i) = self.pending.iter().skip(looked).position(&keep) {
                return self.pending.remove(looked + i).unwrap();
            }
            looked = self.pending.len();
            let d = self.delivery();
            if (200..300).contains(&d.status) {
                self.pending.extend(d.events());
            }
        }
    }

    /// The next accepted event about `channel`.
    pub fn event_on(&mut self, channel: &str) -> Value {
        self.event_where(|e| e["channel"] == channel)
    }
}

fn serve(
    stream: TcpStream,
    key: &str,
    secret: &str,
    script: &Mutex<VecDeque<u16>>,
    tx: &mpsc::Sender<Delivery>,
    gate: &Gate,
) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        assert!(line.starts_with("POST "), "webhook must be a POST: {line}");
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let expected = hmac_hex(secret, &String::from_utf8_lossy(&body));
        let invalid = if get("x-pusher-key").as_deref() != Some(key) {
            Some(format!("X-Pusher-Key {:?}", get("x-pusher-key")))
        } else if get("x-pusher-signature") != Some(expected) {
            Some(format!(
                "X-Pusher-Signature {:?}",
                get("x-pusher-signature")
            ))
        } else if get("content-type").as_deref() != Some("application/json") {
            Some(format!("Content-Type {:?}", get("content-type")))
        } else {
            None
        };
        gate.pass();
        let status = script.lock().unwrap().pop_front().unwrap_or(200);
        let body: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
        let _ = tx.send(Delivery {
            headers,
            body,
            status,
            invalid,
        });
        let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
