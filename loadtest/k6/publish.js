// Publish: signed HTTP API publishes at RATE per second (k6/crypto signs each request).
//   k6 run -e TARGET=127.0.0.1:6001 -e RATE=2000 -e DURATION=30s publish.js
import { check } from 'k6';
import { num, publish } from './lib/pusher.js';

export const options = {
  scenarios: {
    publish: {
      executor: 'constant-arrival-rate', rate: num('RATE', 500), timeUnit: '1s',
      duration: __ENV.DURATION || '20s', preAllocatedVUs: 50, maxVUs: num('MAX_VUS', 500),
    },
  },
  thresholds: {
    checks: ['rate>0.99'],
    http_req_duration: [`p(99)<${num('P99_MS', 100)}`],
  },
};

export default function () {
  const r = publish(`k6-publish-${__ITER % 10}`, 'k6', { t: Date.now() });
  check(r, { 'status 200': (x) => x.status === 200 });
}
