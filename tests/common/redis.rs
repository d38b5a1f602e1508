//! A real `redis-server` for the cluster tests, on a free port, without persistence; and the
//! ringcast nodes joined through it.

use super::{Server, WAIT, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts `redis-server` (from `PATH`; `.ci/run` installs Debian's) and waits for PING.
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again, empty) on the same port.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server (install Debian's redis-server package)");
            // Ours answers with its own pid; another test's server on a port we both picked
            // would answer too, and ours would have exited.
            while Instant::now() < deadline {
                if self.pid_answering() == Some(child.id()) {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "redis-server did not start");
            assert!(
                self.child.is_none(),
                "the port of a restarted Redis was taken"
            );
            self.port = free_port();
        }
    }

    /// The process id of the Redis answering on our port (`INFO server`).
    fn pid_answering(&self) -> Option<u32> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"INFO server\r\n").ok()?;
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while !text.contains("process_id:") || !text[text.find("process_id:")?..].contains('\n') {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let rest = &text[text.find("process_id:")? + "process_id:".len()..];
        rest.lines().next()?.trim().parse().ok()
    }

    /// Runs `commands` (each a command and its arguments) in one pipeline and returns the raw
    /// replies (RESP), once it has answered them all.
    pub fn run(&self, commands: &[&[&str]]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = String::new();
        // QUIT last: it answers, then closes, which ends the read.
        for c in commands.iter().chain([&["QUIT"][..]].iter()) {
            out.push_str(&format!("*{}\r\n", c.len()));
            for a in c.iter() {
                out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
        }
        s.write_all(out.as_bytes()).unwrap();
        let mut replies = String::new();
        s.read_to_string(&mut replies).unwrap();
        replies
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) it: unreachable for a while, its data kept.
    pub fn pause(&self, paused: bool) {
        if let Some(c) = &self.child {
            let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ringcast node of the cluster `prefix` on `redis`, with extra environment; returns once
/// it is connected to Redis.
pub fn node(redis: &Redis, prefix: &str, env: &[(&str, &str)]) -> Server {
    node_with(redis, prefix, None, env)
}

/// [`node`] from a TOML config (e.g. with its own app settings).
pub fn node_with(redis: &Redis, prefix: &str, toml: Option<&str>, env: &[(&str, &str)]) -> Server {
    node_at(&redis.url(), prefix, toml, env)
}

/// [`node_with`] on the Redis at `url` (e.g. through a [`Cable`]).
pub fn node_at(url: &str, prefix: &str, toml: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("RINGCAST_CLUSTER_REDIS_URL", url),
        ("RINGCAST_CLUSTER_PREFIX", prefix),
    ];
    all.extend_from_slice(env);
    let server = match toml {
        Some(toml) => Server::with_config_env(toml, &all),
        None => Server::start(&all),
    };
    server.wait_log("connected to Redis");
    server
}

/// A TCP proxy in front of Redis for one node, which can cut that node off (close its
/// connections and refuse new ones) and mend it again.
pub struct Cable {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Cable {
    pub fn to(redis: &Redis) -> Cable {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (target, c, o) = (redis.port, cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(upstream.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Cable { port, cut, open }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Cuts the node off: its connections close and new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
