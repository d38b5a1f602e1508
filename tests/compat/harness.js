// Starts the real ringcast binary on a free port (the dev app) and waits for its address.
// With RINGCAST_COMPAT_CLUSTER=1 it starts a redis-server and three nodes joined through it
// instead, behind a round-robin TCP proxy, so each connection of a test lands on the next node.
'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const BIN = process.env.RINGCAST_BIN || path.join(__dirname, '..', '..', 'target', 'debug', 'ringcast');

function startServer(env = {}) {
  if (process.env.RINGCAST_COMPAT_CLUSTER === '1') return startCluster(env);
  return startNode(env);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// A redis-server on a free port, answering PING.
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 20000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
      s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
      s.on('error', () => resolve(false));
    });
    if (up) return { port, stop: () => child.kill('SIGKILL') };
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Three nodes on one Redis behind a proxy that hands each new connection to the next node.
async function startCluster(env) {
  const redis = await startRedis();
  const clusterEnv = { RINGCAST_CLUSTER_REDIS_URL: `redis://127.0.0.1:${redis.port}/0`, RINGCAST_CLUSTER_PREFIX: 'compat', ...env };
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const node = await startNode(clusterEnv);
    // Connected to Redis before it takes clients (the line may come before "listening on").
    await eventuallyLine(node.log, 'connected to Redis');
    nodes.push(node);
  }
  let next = 0;
  const proxy = net.createServer((client) => {
    const target = nodes[next++ % nodes.length];
    const upstream = net.connect(target.port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    port: proxy.address().port,
    log: nodes.flatMap((n) => n.log),
    stop: () => { proxy.close(); nodes.forEach((n) => n.stop()); redis.stop(); },
  };
}

async function eventuallyLine(lines, needle) {
  const deadline = Date.now() + 20000;
  while (!lines.some((l) => l.includes(needle))) {
    if (Date.now() > deadline) throw new Error(`no log line with ${needle}:\n${lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function startNode(env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [], {
      env: { ...process.env, RINGCAST_HOST: '127.0.0.1', RINGCAST_PORT: '0', RINGCAST_METRICS_PORT: '0', RUST_LOG: 'info', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const lines = [];
    const timer = setTimeout(() => reject(new Error(`ringcast did not start:\n${lines.join('\n')}`)), 20000);
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      lines.push(line);
      const m = line.match(/listening on [^ ]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), log: lines, stop: () => child.kill('SIGKILL') });
      }
    });
    child.on('error', reject);
  });
}

// Resolves with the first `event` on a pusher-js channel or connection, or fails after `ms`.
function once(target, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    const handler = (data) => {
      clearTimeout(timer);
      target.unbind(event, handler);
      resolve(data);
    };
    target.bind(event, handler);
  });
}

// Polls `fn` until it returns a truthy value (state that converges a moment after an event).
async function eventually(fn, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition never became true');
    await new Promise((r) => setTimeout(r, 10));
  }
}

module.exports = { startServer, startNode, freePort, once, eventually };
