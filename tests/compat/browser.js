// Headless Chromium for the browser tests, driven by puppeteer-core: the system's chromium
// (CHROMIUM_PATH, or `chromium`, `chromium-browser`, `google-chrome` on PATH).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const puppeteer = require('puppeteer-core');

// pusher-js's browser build, as the npm package ships it.
const PUSHER_JS = fs.readFileSync(require.resolve('pusher-js/dist/web/pusher.min.js'));

function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`]).toString().trim();
    } catch { /* next */ }
  }
  throw new Error('no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH');
}

async function launch() {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Root in CI containers cannot use Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

// A page server for the browser: `page` at every path, pusher-js's browser build at
// /pusher.min.js, and a channel authorization endpoint at /auth answered by `authorize`.
function startSite(authorize, page) {
  const srv = http.createServer((req, res) => {
    if (req.url === '/pusher.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(PUSHER_JS);
    }
    if (req.url === '/auth' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => { body += c; });
      return req.on('end', () => {
        const form = new URLSearchParams(body);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(authorize(form.get('socket_id'), form.get('channel_name'))));
      });
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(page);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

// A page with pusher-js on ringcast at `port`: it subscribes to `channel` (authorized by the
// site's /auth), sets window.subscribed once it has, and pushes the data of every `event` into
// window.got; window.channel is the channel and window.socketId() the connection's id.
function subscriberPage(port, channel, event) {
  return `<!doctype html>
<script src="/pusher.min.js"></script>
<script>
  window.got = [];
  const pusher = new Pusher('app-key', {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: ${port}, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { endpoint: '/auth', transport: 'ajax' },
  });
  window.channel = pusher.subscribe(${JSON.stringify(channel)});
  window.channel.bind('pusher:subscription_succeeded', () => { window.subscribed = true; });
  window.channel.bind(${JSON.stringify(event)}, (data) => window.got.push(data));
  window.socketId = () => pusher.connection.socket_id;
</script>`;
}

module.exports = { launch, startSite, subscriberPage, PUSHER_JS };
