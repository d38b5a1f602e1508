// The web console in headless Chromium: log in through its form, see a pusher-js page's
// connection and subscription appear, publish a test event from the console's form, and see it
// both in the console's event log and on the subscriber's page. With RINGCAST_SCREENSHOTS=dir
// it saves the console as dir/console.png (docs/console.png is made this way).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const PusherClient = require('pusher-js');
const { startNode, freePort, once } = require('./harness');
const { launch, startSite, subscriberPage } = require('./browser');

const TOKEN = 'console-test-token';
// Waits poll on a timer: the default polls on animation frames, which a page in the background
// does not get.
const POLL = { polling: 50 };
// The console is per node; the run over three nodes has nothing to add.
const skip = process.env.RINGCAST_COMPAT_CLUSTER === '1' && 'the console is per node';

let server;
let browser;
let site;
let consoleUrl;

before(async () => {
  if (skip) return;
  const metricsPort = await freePort();
  server = await startNode({
    RINGCAST_METRICS_PORT: String(metricsPort),
    RINGCAST_CONSOLE_TOKEN: TOKEN,
    RINGCAST_SHARDS: '2',
    RINGCAST_APP_HISTORY_MAX_MESSAGES: '20',
  });
  consoleUrl = `http://127.0.0.1:${metricsPort}/console`;
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (site) site.close();
  if (server) server.stop();
});

// Whether a row of the console's event log has class `kind` and contains every text given.
function logHas(kind, ...texts) {
  return [...document.querySelectorAll(`#log tr.kind-${kind}`)]
    .some((row) => texts.every((t) => row.textContent.includes(t)));
}

test('the console: log in, see a connection, publish from the form, see it in the log and on the page', { skip }, async () => {
  const console_ = await browser.newPage();
  await console_.setViewport({ width: 1360, height: 1020 });
  const first = await console_.goto(consoleUrl);
  assert.equal(first.status(), 401);

  // A wrong token is refused with the form again; the right one opens the console.
  await console_.type('#token', 'not-the-token');
  const [refused] = await Promise.all([console_.waitForNavigation(), console_.click('#login')]);
  assert.equal(refused.status(), 401);
  assert.match(await console_.$eval('#message', (m) => m.textContent), /not the console's/);
  await console_.type('#token', TOKEN);
  const [opened] = await Promise.all([console_.waitForNavigation(), console_.click('#login')]);
  assert.equal(opened.status(), 200);
  assert.equal(new URL(opened.url()).pathname, '/console');
  await console_.waitForFunction(() => document.getElementById('connections').textContent === '0', POLL);
  await console_.waitForFunction(() => document.getElementById('stream-state').textContent.startsWith('live'), POLL);

  // A subscriber page with pusher-js.
  site = await startSite(() => ({}), subscriberPage(server.port, 'my-channel', 'my-event'));
  const subscriber = await browser.newPage();
  await subscriber.goto(`http://127.0.0.1:${site.address().port}/`);
  await subscriber.waitForFunction(() => window.subscribed === true, POLL);
  const socketId = await subscriber.evaluate(() => window.socketId());
  // A page in the background may have its timers held back.
  await console_.bringToFront();

  await console_.waitForFunction(() => document.getElementById('connections').textContent === '1', POLL);
  await console_.waitForFunction(logHas, POLL, 'connected', socketId);
  await console_.waitForFunction(logHas, POLL, 'subscribed', 'my-channel', socketId);

  // A Node client with pusher-js on the same channel, to see more than one subscriber.
  const other = new PusherClient('app-key', {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: server.port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
  });
  await once(other.subscribe('my-channel'), 'pusher:subscription_succeeded');
  await console_.waitForFunction(() => document.getElementById('connections').textContent === '2', POLL);

  // Publish from the console's form (its defaults: my-channel, my-event, a JSON message).
  await console_.$eval('#pub-data', (t) => { t.value = '{"message":"hello from the console"}'; });
  await console_.click('#pub-send');
  await subscriber.waitForFunction(() => window.got.length === 1, POLL);
  assert.deepEqual(await subscriber.evaluate(() => window.got), [{ message: 'hello from the console' }]);
  await console_.waitForFunction(logHas, POLL, 'publish', 'my-channel', 'hello from the console');
  // The form's answer may come after the log's entry.
  await console_.waitForFunction(() => document.getElementById('pub-result').textContent.startsWith('published to my-channel'), POLL);

  // The channel's drill-down lists the page's socket among its subscribers.
  // Clicked inside the page: the list is redrawn every two seconds, so a row found from here
  // could be gone by the time a click from here lands.
  const row = '#channel-list tr[data-channel="my-channel"]';
  await console_.waitForSelector(row);
  await console_.$eval(row, (r) => r.click());
  await console_.waitForFunction((id) => document.getElementById('detail-sockets').textContent.includes(id), POLL, socketId);
  await console_.waitForFunction(() => document.getElementById('detail-history').textContent.includes('hello from the console'), POLL);
  // Nothing the page received holds the app's secret.
  assert.ok(!(await console_.content()).includes('app-secret'));

  if (process.env.RINGCAST_SCREENSHOTS) {
    await console_.screenshot({ path: path.join(process.env.RINGCAST_SCREENSHOTS, 'console.png') });
  }

  // The subscriber leaves: the log shows its close.
  await subscriber.close();
  await console_.waitForFunction(logHas, POLL, 'closed', socketId);
  await console_.waitForFunction(() => document.getElementById('connections').textContent === '1', POLL);
  other.disconnect();
  await console_.close();
});
