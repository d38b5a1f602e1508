// Run by tls.test.js in a process of its own, because Node reads NODE_EXTRA_CA_CERTS (the test
// CA) only at start. Connects pusher-js with forceTLS and the `pusher` SDK with useTLS to the
// ringcast at localhost:$PORT, and prints what arrived as one JSON line.
'use strict';
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');

const port = Number(process.env.PORT);
const sdk = new PusherServer({
  appId: 'app-id', key: 'app-key', secret: 'app-secret',
  host: 'localhost', port: String(port), useTLS: true,
});
if (process.env.SDK_ONLY === '1') {
  // Only the SDK's request: it must fail on the certificate (exit 3 with the reason).
  sdk.trigger('news', 'story', {}).then(
    () => { console.log('accepted'); process.exit(0); },
    (e) => { console.log(`${e.message} ${e.error ? e.error.code || e.error.message : ''}`); process.exit(3); },
  );
  return;
}

const client = new PusherClient('app-key', {
  cluster: 'mt1', wsHost: 'localhost', wssPort: port, forceTLS: true,
  enabledTransports: ['ws'], disableStats: true,
  channelAuthorization: {
    customHandler: ({ socketId, channelName }, cb) => cb(null, sdk.authorizeChannel(socketId, channelName)),
  },
});

const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail('timed out'), 15000).unref();
client.connection.bind('error', (e) => fail(`connection error: ${JSON.stringify(e)}`));

const result = {};
const news = client.subscribe('news');
news.bind('pusher:subscription_succeeded', async () => {
  const secret = client.subscribe('private-room');
  secret.bind('pusher:subscription_succeeded', async () => {
    const info = await sdk.get({ path: '/channels/news', params: { info: 'subscription_count' } });
    result.channelInfo = await info.json();
    await sdk.trigger('news', 'story', { title: 'over TLS' });
  });
  secret.bind('whisper', (data) => {
    result.privateEvent = data;
    result.socketId = client.connection.socket_id;
    console.log(JSON.stringify(result));
    client.disconnect();
    process.exit(0);
  });
});
news.bind('story', async (data) => {
  result.publicEvent = data;
  await sdk.trigger('private-room', 'whisper', { secret: true });
});
