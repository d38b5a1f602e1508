// The README's quick start, as written there: its page's script (with pusher-js, and a
// document that records what the page appends) and its one-line SDK publish, against the dev
// server. Only the port changes (the test's server listens on a free one).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const PusherClient = require('pusher-js');
const { startServer, eventually } = require('./harness');

const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## Connecting'));

function block(lang) {
  const m = quickStart.match(new RegExp('```' + lang + '\\n([\\s\\S]*?)```'));
  assert.ok(m, `no ${lang} block in the README's quick start`);
  return m[1];
}

let server;
before(async () => { server = await startServer(); });
after(() => server.stop());

test("the README's quick start page receives the message its SDK call publishes", async () => {
  const html = block('html');
  assert.match(html, /pusher-js@8\.6\.0\/dist\/web\/pusher\.min\.js/);
  const pinned = require('pusher-js/package.json').version;
  assert.equal(pinned, '8.6.0', 'the page loads the pusher-js version the suite pins');
  const script = html.split('<script>')[1].split('</script>')[0].replaceAll('6001', String(server.port));

  const items = [];
  const document = {
    createElement: () => ({ textContent: '' }),
    getElementById: (id) => (id === 'log' ? { append: (item) => items.push(item.textContent) } : null),
  };
  const pushers = [];
  class Pusher extends PusherClient {
    constructor(...args) { super(...args); pushers.push(this); }
  }
  vm.runInNewContext(script, { Pusher, document, JSON });
  await eventually(() => pushers[0]?.channel('my-channel')?.subscribed);

  const command = block('sh').trim().replaceAll('6001', String(server.port));
  const code = command.match(/^node -e '([\s\S]*)'$/)[1];
  await new Promise((resolve, reject) => execFile(process.execPath, ['-e', code], { cwd: __dirname },
    (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve())));

  await eventually(() => items.length > 0);
  assert.deepEqual(items, ['{"message":"hello"}']);
  pushers[0].disconnect();
});
