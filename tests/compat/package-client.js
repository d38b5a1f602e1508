// Run by scripts/test-package against the installed package's server: pusher-js subscribes
// with the app key the package generated, the `pusher` SDK publishes with its secret, and the
// event must arrive. Usage: PORT=… KEY=… SECRET=… APP_ID=… node package-client.js
'use strict';
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');

const { PORT, KEY, SECRET, APP_ID } = process.env;
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail('no event within 15 s'), 15000).unref();

const sdk = new PusherServer({ appId: APP_ID, key: KEY, secret: SECRET, host: '127.0.0.1', port: PORT, useTLS: false });
const client = new PusherClient(KEY, {
  cluster: 'mt1', wsHost: '127.0.0.1', wsPort: Number(PORT), forceTLS: false,
  enabledTransports: ['ws'], disableStats: true,
});
client.connection.bind('error', (e) => fail(`connection error: ${JSON.stringify(e)}`));
const channel = client.subscribe('installed');
channel.bind('pusher:subscription_succeeded', () => {
  sdk.trigger('installed', 'hello', { from: 'the package' }).catch((e) => fail(`trigger: ${e.message}`));
});
channel.bind('hello', (data) => {
  console.log(`received ${JSON.stringify(data)} on socket ${client.connection.socket_id}`);
  client.disconnect();
  process.exit(0);
});
