// Starts the real ringcast binary on a free port (the dev app) and waits for its address.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const BIN = process.env.RINGCAST_BIN || path.join(__dirname, '..', '..', 'target', 'debug', 'ringcast');

function startServer(env = {}) {
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

module.exports = { startServer, once, eventually };
