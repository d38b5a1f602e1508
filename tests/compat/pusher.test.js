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

test('presence: two users with two connections each', async () => {
  const ann = { user_id: 'ann', user_info: { name: 'Ann' } };
  const bob = { user_id: 7, user_info: { name: 'Bob' } };
  const a1 = client({ presence: ann });
  const room1 = await subscribe(a1, 'presence-room');
  assert.equal(room1.members.count, 1);
  assert.equal(room1.members.me.id, 'ann');

  const added = [];
  const removed = [];
  room1.bind('pusher:member_added', (m) => added.push(m.id));
  room1.bind('pusher:member_removed', (m) => removed.push(m.id));

  const b1 = client({ presence: bob });
  const bobAdded = once(room1, 'pusher:member_added');
  const room2 = await subscribe(b1, 'presence-room');
  assert.equal((await bobAdded).id, '7', 'numeric ids arrive as strings');
  assert.equal(room2.members.count, 2);
  assert.deepEqual(room2.members.get('ann').info, { name: 'Ann' });

  // Second connections of both users: no new members.
  const a2 = client({ presence: ann });
  const b2 = client({ presence: bob });
  assert.equal((await subscribe(a2, 'presence-room')).members.count, 2);
  assert.equal((await subscribe(b2, 'presence-room')).members.count, 2);

  // Client events on presence channels carry the sender's user_id.
  const wave = new Promise((resolve) => room1.bind('client-wave', (data, meta) => resolve(meta)));
  room2.trigger('client-wave', {});
  assert.equal((await wave).user_id, '7');

  // Bob leaves with his first connection: still a member. Then with his last.
  b1.disconnect();
  const marker = once(room1, 'marker');
  await sdk.trigger('presence-room', 'marker', {});
  await marker;
  assert.deepEqual(removed, []);
  const bobGone = once(room1, 'pusher:member_removed');
  b2.unsubscribe('presence-room');
  assert.equal((await bobGone).id, '7');
  assert.deepEqual(added, ['7']);

  const users = await (await sdk.get({ path: '/channels/presence-room/users' })).json();
  assert.deepEqual(users, { users: [{ id: 'ann' }] });
});

test('encrypted channels: pusher-js decrypts what the SDK encrypted', async () => {
  // The Node build of pusher-js includes the decryption (tweetnacl) itself.
  const masterKey = Buffer.alloc(32, 7).toString('base64');
  const secure = new PusherServer({
    appId: 'app-id', key: 'app-key', secret: 'app-secret',
    host: '127.0.0.1', port: String(server.port), useTLS: false,
    encryptionMasterKeyBase64: masterKey,
  });
  const c = client({ sdkForAuth: secure });
  const channel = await subscribe(c, 'private-encrypted-vault');
  const got = once(channel, 'secret');
  await secure.trigger('private-encrypted-vault', 'secret', { code: 1234 });
  assert.deepEqual(await got, { code: 1234 });
  // Client events are refused on encrypted channels: pusher-js refuses them itself, so send
  // the raw event to check the server does too.
  assert.throws(() => channel.trigger('client-x', {}));
  c.send_event('client-x', {}, 'private-encrypted-vault');
  const err = await once(c.connection, 'error');
  assert.equal(err.data.code, 4301);
});

test('users: signin, sendToUser, terminateUserConnections', async () => {
  const user = { id: 'u-1', user_info: { name: 'U' } };
  const c1 = client({ user });
  const c2 = client({ user });
  for (const c of [c1, c2]) {
    const ok = once(c, 'pusher:signin_success');
    c.signin();
    await ok;
  }
  // pusher-js subscribes to #server-to-user-u-1 after signing in; sendToUser reaches both.
  const notes = [c1, c2].map((c) => once(c.user, 'note'));
  await eventually(async () => {
    const res = await sdk.get({ path: '/channels', params: { info: 'subscription_count' } });
    const json = await res.json();
    const ch = json.channels['#server-to-user-u-1'];
    return ch && ch.subscription_count === 2;
  });
  await sdk.sendToUser('u-1', 'note', { hi: true });
  for (const n of notes) assert.deepEqual(await n, { hi: true });

  const errors = [c1, c2].map((c) => once(c.connection, 'error'));
  await sdk.terminateUserConnections('u-1');
  for (const e of errors) assert.equal((await e).data.code, 4009);
});
