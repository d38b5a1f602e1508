// Connect: ramps to CONNECTIONS open connections over RAMP and measures the time from
// opening the socket to `pusher:connection_established`.
//   k6 run -e TARGET=127.0.0.1:6001 -e CONNECTIONS=2000 -e RAMP=20s connect.js
import { WebSocket } from 'k6/experimental/websockets';
import { Rate, Trend } from 'k6/metrics';
import { num, parseFrame, send, wsUrl } from './lib/pusher.js';

const RAMP = __ENV.RAMP || '20s';
const HOLD = __ENV.HOLD || '10s';
const connectTime = new Trend('connect_time', true);
const established = new Rate('established');

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus', startVUs: 0,
      stages: [{ duration: RAMP, target: num('CONNECTIONS', 1000) }, { duration: HOLD, target: num('CONNECTIONS', 1000) }],
      gracefulRampDown: '5s', gracefulStop: '10s',
    },
  },
  thresholds: {
    established: ['rate>0.99'],
    connect_time: [`p(99)<${num('P99_MS', 1000)}`],
  },
};

export default function () {
  const started = Date.now();
  const ws = new WebSocket(wsUrl());
  let ok = false;
  ws.onmessage = (e) => {
    const f = parseFrame(e.data);
    if (f.event === 'pusher:connection_established') {
      ok = true;
      connectTime.add(Date.now() - started);
      established.add(true);
    } else if (f.event === 'pusher:ping') {
      send(ws, 'pusher:pong', {});
    }
  };
  ws.onerror = () => {
    if (!ok) established.add(false);
  };
  // Each VU keeps its connection open for the rest of the run.
  setTimeout(() => ws.close(), 60 * 60 * 1000);
}
