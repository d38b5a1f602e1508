// Soak: SUBSCRIBERS connections held open on one channel, CHURN connections that connect,
// subscribe and leave again and again, and events carrying their send time published at
// RATE per second. Thresholds on the message delay p95 and on failed connections: the common
// shape of Pusher-server benchmarks.
//   k6 run -e TARGET=127.0.0.1:6001 -e SUBSCRIBERS=500 -e CHURN=50 -e RATE=20 -e DURATION=60s soak.js
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Rate, Trend } from 'k6/metrics';
import { check } from 'k6';
import { num, parseFrame, publish, send, wsUrl } from './lib/pusher.js';

const DURATION = __ENV.DURATION || '30s';
const seconds = parseInt(DURATION, 10) * (DURATION.endsWith('m') ? 60 : 1);
const delay = new Trend('message_delay', true);
const failedConnections = new Rate('failed_connections');
const received = new Counter('messages_received');

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations', vus: num('SUBSCRIBERS', 200), iterations: 1,
      maxDuration: `${seconds + 30}s`, exec: 'subscriber',
    },
    churn: {
      executor: 'constant-vus', vus: num('CHURN', 20), duration: DURATION, exec: 'churner',
    },
    publisher: {
      executor: 'constant-arrival-rate', rate: num('RATE', 10), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: 10, maxVUs: 100, exec: 'publisher', startTime: '3s',
    },
  },
  thresholds: {
    message_delay: [`p(95)<${num('P95_MS', 500)}`],
    failed_connections: ['rate<0.01'],
    'checks{kind:publish}': ['rate>0.99'],
  },
};

// Holds one subscribed connection for the whole run and measures each event's delay.
function hold(ms, onEvent) {
  const ws = new WebSocket(wsUrl());
  let established = false;
  ws.onmessage = (e) => {
    const f = parseFrame(e.data);
    if (f.event === 'pusher:connection_established') {
      established = true;
      failedConnections.add(false);
      send(ws, 'pusher:subscribe', { channel: 'soak' });
    } else if (f.event === 'pusher:ping') {
      send(ws, 'pusher:pong', {});
    } else if (onEvent) {
      onEvent(f);
    }
  };
  ws.onerror = () => {
    if (!established) failedConnections.add(true);
  };
  setTimeout(() => ws.close(), ms);
}

export function subscriber() {
  hold((seconds + 8) * 1000, (f) => {
    if (f.event === 'soak-event' && f.payload && f.payload.t) {
      received.add(1);
      delay.add(Date.now() - f.payload.t);
    }
  });
}

export function churner() {
  hold(500 + Math.random() * 1500);
}

export function publisher() {
  const r = publish('soak', 'soak-event', { t: Date.now() });
  check(r, { 'publish 200': (x) => x.status === 200 }, { kind: 'publish' });
}
