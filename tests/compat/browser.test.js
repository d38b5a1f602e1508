// The real pusher-js 8 browser build in headless Chromium against ringcast: a page subscribes
// to a private channel (authorized by an endpoint using the `pusher` SDK), receives what the
// SDK publishes, and whispers a client event another client receives. Then the README's quick
// start page, exactly as written, receives the message its one-line SDK call publishes.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const { startServer, once } = require('./harness');
const { launch, startSite, subscriberPage } = require('./browser');

const { PUSHER_JS } = require('./browser');

let server;
let sdk;
let browser;
let site;

before(async () => {
  server = await startServer();
  sdk = new PusherServer({
    appId: 'app-id', key: 'app-key', secret: 'app-secret',
    host: '127.0.0.1', port: String(server.port), useTLS: false,
  });
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (site) site.close();
  server.stop();
});

test('pusher-js in Chromium subscribes, receives and whispers', async () => {
  const authorize = (socketId, channel) => sdk.authorizeChannel(socketId, channel);
  site = await startSite(authorize, subscriberPage(server.port, 'private-room', 'news'));
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${site.address().port}/`);
  await page.waitForFunction(() => window.subscribed === true);
  const socketId = await page.evaluate(() => window.socketId());
  assert.match(socketId, /^\d+\.\d+$/);

  await sdk.trigger('private-room', 'news', { headline: 'from the SDK' });
  await page.waitForFunction(() => window.got.length === 1);
  assert.deepEqual(await page.evaluate(() => window.got), [{ headline: 'from the SDK' }]);

  // A Node client on the same channel hears the page's whisper (a client event).
  const other = new PusherClient('app-key', {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: server.port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId: id, channelName }, cb) => cb(null, sdk.authorizeChannel(id, channelName)),
    },
  });
  const otherRoom = other.subscribe('private-room');
  await once(otherRoom, 'pusher:subscription_succeeded');
  const whisper = once(otherRoom, 'client-typing');
  await page.evaluate(() => window.channel.trigger('client-typing', { who: 'the browser' }));
  assert.deepEqual(await whisper, { who: 'the browser' });
  other.disconnect();
  await page.close();
});

test("the README's quick start page, as written, shows the SDK's message in Chromium", async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const quick = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## Connecting'));
  const html = quick.match(/```html\n([\s\S]*?)```/)[1].replaceAll('6001', String(server.port));
  const command = quick.match(/```sh\n([\s\S]*?)```/)[1].trim().replaceAll('6001', String(server.port));

  const page = await browser.newPage();
  // The page loads pusher-js from jsDelivr; the test answers with the same file from npm, so
  // it runs offline.
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    if (req.url().startsWith('https://cdn.jsdelivr.net/npm/pusher-js@8.6.0/')) {
      req.respond({ status: 200, contentType: 'text/javascript', body: PUSHER_JS });
    } else {
      req.continue();
    }
  });
  await page.setContent(html, { waitUntil: 'load' });
  await page.waitForFunction(() => typeof pusher !== 'undefined' && pusher.channel('my-channel')?.subscribed);

  const code = command.match(/^node -e '([\s\S]*)'$/)[1];
  await new Promise((resolve, reject) => execFile(process.execPath, ['-e', code], { cwd: __dirname },
    (error, _out, stderr) => (error ? reject(new Error(stderr)) : resolve())));
  await page.waitForFunction(() => document.querySelectorAll('#log li').length > 0);
  const shown = await page.$$eval('#log li', (items) => items.map((i) => i.textContent));
  assert.deepEqual(shown, ['{"message":"hello"}']);
  await page.close();
});
