// Laravel Echo 2 (pusher broadcaster) against ringcast: presence here/joining/leaving with two
// users holding several connections, and whisper/listenForWhisper.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
let Echo; // laravel-echo 2 is an ES module: loaded with import() in before()
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const { startServer } = require('./harness');

let server;
let sdk;
const echos = [];

before(async () => {
  Echo = (await import('laravel-echo')).default;
  server = await startServer();
  sdk = new PusherServer({
    appId: 'app-id', key: 'app-key', secret: 'app-secret',
    host: '127.0.0.1', port: String(server.port), useTLS: false,
  });
});

after(() => {
  for (const e of echos) e.disconnect();
  server.stop();
});

function echoFor(user) {
  const presence = { user_id: user.id, user_info: user };
  const client = new PusherClient('app-key', {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: server.port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) =>
        cb(null, sdk.authorizeChannel(socketId, channelName, channelName.startsWith('presence-') ? presence : undefined)),
    },
  });
  const echo = new Echo({ broadcaster: 'pusher', key: 'app-key', client });
  echos.push(echo);
  return echo;
}

// A promise and the function that resolves it, for callbacks.
function deferred(ms = 10000) {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  const timer = setTimeout(() => reject(new Error(`not called within ${ms} ms`)), ms);
  return { promise, resolve: (v) => { clearTimeout(timer); resolve(v); } };
}

test('presence: here, joining and leaving with several connections per user', async () => {
  const ann = { id: 1, name: 'Ann' };
  const bob = { id: 2, name: 'Bob' };
  const here = deferred();
  const joined = [];
  const left = [];
  const firstJoin = deferred();
  const bobLeft = deferred();
  echoFor(ann).join('room')
    .here((users) => here.resolve(users))
    .joining((u) => { joined.push(u.name); firstJoin.resolve(u); })
    .leaving((u) => { left.push(u.name); bobLeft.resolve(u); });
  assert.deepEqual(await here.promise, [ann]);

  const bobHere = deferred();
  const bob1 = echoFor(bob);
  bob1.join('room').here((users) => bobHere.resolve(users));
  const users = await bobHere.promise;
  assert.deepEqual(users.map((u) => u.name).sort(), ['Ann', 'Bob']);
  assert.deepEqual(await firstJoin.promise, bob);

  // A second connection of each user changes nothing for the others.
  for (const user of [ann, bob]) {
    const d = deferred();
    echoFor(user).join('room').here((u) => d.resolve(u));
    assert.equal((await d.promise).length, 2);
  }
  bob1.disconnect();
  // Bob still has a connection: no leaving. A whisper from it proves the channel is live and
  // that the disconnect has been processed before it.
  const whisper = deferred();
  echos[0].join('room').listenForWhisper('ping', (e) => whisper.resolve(e));
  echos[3].join('room').whisper('ping', { from: 'bob-2' });
  assert.deepEqual(await whisper.promise, { from: 'bob-2' });
  assert.deepEqual(left, []);

  echos[3].leave('room');
  assert.deepEqual(await bobLeft.promise, bob);
  assert.deepEqual(joined, ['Bob']);
});

test('whisper and listenForWhisper on a private channel', async () => {
  const a = echoFor({ id: 10 });
  const b = echoFor({ id: 11 });
  const heard = deferred();
  const ready = deferred();
  b.private('chat').listenForWhisper('typing', (e) => heard.resolve(e));
  b.connector.pusher.channel('private-chat').bind('pusher:subscription_succeeded', () => ready.resolve());
  await ready.promise;
  const aReady = deferred();
  const channel = a.private('chat');
  a.connector.pusher.channel('private-chat').bind('pusher:subscription_succeeded', () => aReady.resolve());
  await aReady.promise;
  channel.whisper('typing', { name: 'A' });
  assert.deepEqual(await heard.promise, { name: 'A' });
});
