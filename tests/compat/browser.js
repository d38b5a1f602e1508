// Headless Chromium for the browser tests, driven by puppeteer-core: the system's chromium
// (CHROMIUM_PATH, or `chromium`, `chromium-browser`, `google-chrome` on PATH).
'use strict';
const { execFileSync } = require('node:child_process');
const puppeteer = require('puppeteer-core');

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

module.exports = { launch };
