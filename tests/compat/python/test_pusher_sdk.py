"""The Python `pusher` SDK from PyPI against the real ringcast binary: trigger,
trigger_batch, channels_info, channel_info, users_info, and validate_webhook on a webhook the
server really sent. The app id is numeric, as the SDK expects.

With RINGCAST_COMPAT_CLUSTER=1 the same tests run against three nodes joined through a
redis-server, behind a round-robin TCP proxy, so each connection (WebSocket or HTTP) lands on
the next node."""

import json
import os
import queue
import re
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pusher
import websocket

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
BIN = os.environ.get("RINGCAST_BIN", os.path.join(ROOT, "target", "debug", "ringcast"))
APP_ID, KEY, SECRET = "4242", "py-key", "py-secret"
WAIT = 20


class WebhookReceiver:
    """A real HTTP receiver; every request lands in a queue with its raw body and headers."""

    def __init__(self):
        self.requests = queue.Queue()
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # Header names are case-insensitive; the message object looks them up that way.
                received.put((self.headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hooks" % self.server.server_address[1]

    def next(self):
        return self.requests.get(timeout=WAIT)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One ringcast process; `wait_for` names a log line to wait for besides its address."""

    def __init__(self, config, env, wait_for=None):
        env = dict(os.environ, RINGCAST_HOST="127.0.0.1", RINGCAST_PORT="0", RINGCAST_METRICS_PORT="0", RUST_LOG="info",
                   RINGCAST_WEBHOOK_HOLD_MS="100", **env)
        self.proc = subprocess.Popen([BIN, "--config", config], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + WAIT
        self.port = None
        for line in self.proc.stderr:
            m = re.search(r"listening on [^ ]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if wait_for and wait_for in line:
                wait_for = None
            if self.port and not wait_for:
                break
            if time.time() > deadline:
                raise RuntimeError("ringcast did not start")
        else:
            raise RuntimeError("ringcast exited before listening")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Redis:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + WAIT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class RoundRobinProxy:
    """Hands each new TCP connection to the next of `ports`."""

    def __init__(self, ports):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ports = ports
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        n = 0
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.ports[n % len(self.ports)]))
            n += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        src.close()

    def stop(self):
        self.listener.close()


class Server:
    """One node, or with RINGCAST_COMPAT_CLUSTER=1 three nodes on a redis-server behind a
    round-robin proxy; `port` is where clients connect."""

    def __init__(self, webhook_url):
        self.dir = tempfile.TemporaryDirectory()
        config = os.path.join(self.dir.name, "ringcast.toml")
        with open(config, "w") as f:
            f.write(
                '[[apps]]\nid = "%s"\nkey = "%s"\nsecret = "%s"\n'
                '[[apps.webhooks]]\nurl = "%s"\n' % (APP_ID, KEY, SECRET, webhook_url)
            )
        self.redis = self.proxy = None
        if os.environ.get("RINGCAST_COMPAT_CLUSTER") == "1":
            self.redis = Redis()
            env = {"RINGCAST_CLUSTER_REDIS_URL": "redis://127.0.0.1:%d/0" % self.redis.port,
                   "RINGCAST_CLUSTER_PREFIX": "compat"}
            self.nodes = [Node(config, env, "connected to Redis") for _ in range(3)]
            self.proxy = RoundRobinProxy([n.port for n in self.nodes])
            self.port = self.proxy.port
        else:
            self.nodes = [Node(config, {})]
            self.port = self.nodes[0].port

    def stop(self):
        for n in self.nodes:
            n.stop()
        if self.proxy:
            self.proxy.stop()
        if self.redis:
            self.redis.stop()
        self.dir.cleanup()


class Subscriber:
    """A raw Pusher-protocol WebSocket client."""

    def __init__(self, port):
        self.ws = websocket.create_connection(
            "ws://127.0.0.1:%d/app/%s?protocol=7&client=py&version=1" % (port, KEY), timeout=WAIT)
        established = self.expect("pusher:connection_established")
        self.socket_id = json.loads(established["data"])["socket_id"]

    def expect(self, event):
        while True:
            message = json.loads(self.ws.recv())
            if message["event"] == event:
                return message

    def subscribe(self, channel, auth=None):
        data = {"channel": channel}
        if auth:
            data.update(auth)
        self.ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
        return self.expect("pusher_internal:subscription_succeeded")


class PythonSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hooks = WebhookReceiver()
        cls.server = Server(cls.hooks.url)
        cls.client = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, host="127.0.0.1",
                                   port=cls.server.port, ssl=False)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.hooks.server.shutdown()

    def eventually(self, fn):
        deadline = time.time() + WAIT
        while True:
            value = fn()
            if value or time.time() > deadline:
                return value
            time.sleep(0.01)

    def test_trigger_and_trigger_batch_reach_a_subscriber(self):
        sub = Subscriber(self.server.port)
        sub.subscribe("py-news")
        self.assertEqual(self.client.trigger("py-news", "headline", {"n": 1}), {})
        event = sub.expect("headline")
        self.assertEqual((event["channel"], json.loads(event["data"])), ("py-news", {"n": 1}))
        answer = self.client.trigger_batch([
            {"channel": "py-news", "name": "b1", "data": "one"},
            {"channel": "py-news", "name": "b2", "data": "two"},
        ])
        self.assertEqual(answer, {})
        self.assertEqual(sub.expect("b1")["data"], "one")
        self.assertEqual(sub.expect("b2")["data"], "two")

    def test_channel_queries_on_a_presence_channel(self):
        members = []
        for user in ["u1", "u2"]:
            sub = Subscriber(self.server.port)
            auth = self.client.authenticate("presence-py", sub.socket_id, {"user_id": user})
            sub.subscribe("presence-py", auth)
            members.append(sub)
        info = self.eventually(lambda: (lambda i: i if i.get("user_count") == 2 else None)(
            self.client.channel_info("presence-py", ["user_count", "subscription_count"])))
        self.assertEqual(info, {"occupied": True, "user_count": 2, "subscription_count": 2})
        channels = self.client.channels_info(prefix_filter="presence-", attributes=["user_count"])
        self.assertEqual(channels["channels"]["presence-py"], {"user_count": 2})
        users = self.client.users_info("presence-py")
        self.assertEqual(sorted(u["id"] for u in users["users"]), ["u1", "u2"])
        self.assertEqual(self.client.channel_info("py-empty"), {"occupied": False})

    def test_validate_webhook_accepts_what_the_server_sent(self):
        sub = Subscriber(self.server.port)
        sub.subscribe("py-hooked")
        while True:
            headers, body = self.hooks.next()
            events = json.loads(body)["events"]
            if {"name": "channel_occupied", "channel": "py-hooked"} in events:
                break
        valid = self.client.validate_webhook(key=headers["X-Pusher-Key"],
                                             signature=headers["X-Pusher-Signature"],
                                             body=body.decode())
        self.assertIsNotNone(valid)
        self.assertIn({"name": "channel_occupied", "channel": "py-hooked"}, valid["events"])
        tampered = body.decode().replace("py-hooked", "py-forged")
        self.assertIsNone(self.client.validate_webhook(
            key=headers["X-Pusher-Key"], signature=headers["X-Pusher-Signature"], body=tampered))


if __name__ == "__main__":
    unittest.main()
