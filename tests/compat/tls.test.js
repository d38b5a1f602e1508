// pusher-js 8 with forceTLS and the `pusher` 5 SDK with useTLS against ringcast serving TLS
// on its public port, with a certificate from a CA this test makes (openssl) and that Node
// trusts through NODE_EXTRA_CA_CERTS.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer } = require('./harness');

let server;
let dir;

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ringcast-tls-'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '2', '-subj', '/CN=ringcast test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  server = await startServer({
    RINGCAST_TLS_CERT_FILE: path.join(dir, 'server.pem'),
    RINGCAST_TLS_KEY_FILE: path.join(dir, 'server.key'),
  });
});

after(() => {
  server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function runClient(env) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(__dirname, 'tls-client.js')],
      { env: { ...process.env, PORT: String(server.port), ...env }, timeout: 30000 },
      (error, stdout, stderr) => resolve({ code: error ? error.code ?? 1 : 0, stdout, stderr }));
  });
}

test('pusher-js (forceTLS) and the Node SDK (useTLS) over TLS with the test CA', async () => {
  const run = await runClient({ NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') });
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim().split('\n').pop());
  assert.deepEqual(result.publicEvent, { title: 'over TLS' });
  assert.deepEqual(result.privateEvent, { secret: true });
  assert.match(result.socketId, /^\d+\.\d+$/);
  assert.equal(result.channelInfo.subscription_count >= 1, true);
});

test('without the test CA the SDK refuses the certificate', async () => {
  const run = await runClient({ NODE_EXTRA_CA_CERTS: '', SDK_ONLY: '1' });
  assert.equal(run.code, 3, run.stdout + run.stderr);
  assert.match(run.stdout, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate/i);
});
