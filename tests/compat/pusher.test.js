// pusher-js 8 (Node build, ws transport) and the `pusher` 5 Node SDK against ringcast.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const { startServer, once, eventually } = require('./harness');

let server;
let sdk;
const clients = [];

before(async () => {
  server = await startServer();
  sdk = new PusherServer({
    appId: 'app-id', key: 'app-key', secret: 'app-secret',
    host: '127.0.0.1', port: String(server.port), useTLS: false,
  });
});

after(() => {
  for (const c of clients) c.disconnect();
  server.stop();
});

function client({ presence, user, Client = PusherClient, sdkForAuth = sdk } = {}) {
  const c = new Client('app-key', {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: server.port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) =>
        cb(null, sdkForAuth.authorizeChannel(socketId, channelName, channelName.startsWith('presence-') ? presence : undefined)),
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => cb(null, sdkForAuth.authenticateUser(socketId, user)),
    },
  });
  clients.push(c);
  return c;
}

async function subscribe(c, name) {
  const channel = c.subscribe(name);
  await once(channel, 'pusher:subscription_succeeded');
  return channel;
}

test('public channels: trigger, triggerBatch and channel queries', async () => {
  const c = client();
  const news = await subscribe(c, 'news');
  const story = once(news, 'story');
  await sdk.trigger('news', 'story', { title: 'hello', n: 1 });
  assert.deepEqual(await story, { title: 'hello', n: 1 });

  const second = once(news, 'b2');
  await sdk.triggerBatch([
    { channel: 'news', name: 'b1', data: { x: 1 } },
    { channel: 'news', name: 'b2', data: { x: 2 } },
  ]);
  assert.deepEqual(await second, { x: 2 });

  const body = await eventually(async () => {
    const res = await sdk.get({ path: '/channels', params: { info: 'subscription_count' } });
    assert.equal(res.status, 200);
    const json = await res.json();
    return json.channels.news && json.channels.news.subscription_count === 1 && json;
  });
  assert.deepEqual(body, { channels: { news: { subscription_count: 1 } } });
  const one = await (await sdk.get({ path: '/channels/news', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(one, { occupied: true, subscription_count: 1 });
});

test('private channels: authorizeChannel, client events to others only', async () => {
  const a = client();
  const b = client();
  const chA = await subscribe(a, 'private-chat');
  const chB = await subscribe(b, 'private-chat');
  let echoed = false;
  chA.bind('client-typing', () => { echoed = true; });
  const got = once(chB, 'client-typing');
  assert.ok(chA.trigger('client-typing', { who: 'a' }));
  assert.deepEqual(await got, { who: 'a' });
  // A server event published after the client event arrives after it: if it had been echoed
  // to its sender, the echo would have come first.
  const marker = once(chA, 'marker');
  await sdk.trigger('private-chat', 'marker', {});
  await marker;
  assert.equal(echoed, false);
});
