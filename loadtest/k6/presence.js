// Presence: every VU joins a presence channel (ROOMS of them) with signed channel data,
// stays a moment, leaves, and joins again; checks that joins succeed and that member events
// about the others arrive.
//   k6 run -e TARGET=127.0.0.1:6001 -e VUS=100 -e ROOMS=10 -e DURATION=30s presence.js
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Rate } from 'k6/metrics';
import { channelAuth, num, parseFrame, send, wsUrl } from './lib/pusher.js';

const joined = new Rate('joins_succeeded');
const memberEvents = new Counter('member_events');

export const options = {
  scenarios: {
    members: { executor: 'constant-vus', vus: num('VUS', 50), duration: __ENV.DURATION || '20s' },
  },
  thresholds: {
    joins_succeeded: ['rate>0.99'],
    member_events: ['count>0'],
  },
};

export default function () {
  const room = `presence-k6-${__VU % num('ROOMS', 5)}`;
  const userId = `k6-user-${__VU}`;
  const ws = new WebSocket(wsUrl());
  ws.onmessage = (e) => {
    const f = parseFrame(e.data);
    if (f.event === 'pusher:connection_established') {
      const channelData = JSON.stringify({ user_id: userId, user_info: { vu: __VU } });
      const auth = channelAuth(f.payload.socket_id, room, channelData);
      send(ws, 'pusher:subscribe', { channel: room, auth, channel_data: channelData });
    } else if (f.event === 'pusher_internal:subscription_succeeded') {
      joined.add(f.payload.presence && f.payload.presence.hash[userId] !== undefined);
      // Stay a moment, then leave; the next iteration joins again.
      setTimeout(() => {
        send(ws, 'pusher:unsubscribe', { channel: room });
        ws.close();
      }, 500 + Math.random() * 1500);
    } else if (f.event === 'pusher:subscription_error') {
      joined.add(false);
      ws.close();
    } else if (f.event === 'pusher_internal:member_added' || f.event === 'pusher_internal:member_removed') {
      memberEvents.add(1);
    } else if (f.event === 'pusher:ping') {
      send(ws, 'pusher:pong', {});
    }
  };
}
