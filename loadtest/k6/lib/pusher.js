// Helpers shared by the k6 scripts: configuration from the environment, Pusher HTTP API
// signing (k6/crypto for HMAC-SHA256 and MD5), channel authorization, and frame parsing.
import crypto from 'k6/crypto';
import http from 'k6/http';

export const TARGET = __ENV.TARGET || '127.0.0.1:6001'; // host:port of WebSocket + HTTP API
export const APP_ID = __ENV.APP_ID || 'app-id';
export const KEY = __ENV.APP_KEY || 'app-key';
export const SECRET = __ENV.APP_SECRET || 'app-secret';

export function num(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : Number(v);
}

export const wsUrl = () =>
  `ws://${TARGET}/app/${KEY}?protocol=7&client=k6&version=1.0&flash=false`;

// Pusher request signing: every parameter but auth_signature, sorted, unescaped values.
export function signedUrl(method, path, body) {
  const params = {
    auth_key: KEY,
    auth_timestamp: Math.floor(Date.now() / 1000),
    auth_version: '1.0',
  };
  if (body) params.body_md5 = crypto.md5(body, 'hex');
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const signature = crypto.hmac('sha256', SECRET, `${method}\n${path}\n${query}`, 'hex');
  return `http://${TARGET}${path}?${query}&auth_signature=${signature}`;
}

// Publishes one event; returns the k6 HTTP response.
export function publish(channel, name, data, tags) {
  const body = JSON.stringify({ name, channel, data: JSON.stringify(data) });
  const path = `/apps/${APP_ID}/events`;
  return http.post(signedUrl('POST', path, body), body, {
    headers: { 'Content-Type': 'application/json' },
    tags,
  });
}

// `auth` for a private or presence subscription.
export function channelAuth(socketId, channel, channelData) {
  const message = channelData === undefined
    ? `${socketId}:${channel}`
    : `${socketId}:${channel}:${channelData}`;
  return `${KEY}:${crypto.hmac('sha256', SECRET, message, 'hex')}`;
}

// A server frame as an object; `data` decoded when it is a JSON string holding JSON.
export function parseFrame(text) {
  const frame = JSON.parse(text);
  if (typeof frame.data === 'string') {
    try {
      frame.payload = JSON.parse(frame.data);
    } catch (_) {
      frame.payload = frame.data;
    }
  } else {
    frame.payload = frame.data;
  }
  return frame;
}

export const send = (ws, event, data) => ws.send(JSON.stringify({ event, data }));
