//! The client protocol without sockets: messages (one per input line) parsed as a shard parses
//! them and applied by the protocol rules to two connections of one app, with every question
//! to the API core answered (joins admitted) and the connections leaving at the end.

use ringcast::app::Apps;
use ringcast::bus::{ApiCommand, ConnRef, Question};
use ringcast::config::AppConfig;
use ringcast::fair_share::Cap;
use ringcast::protocol::{ClientMessage, SocketId};
use ringcast::shard::rules::{join, on_disconnect, on_message};
use ringcast::shard::state::ShardState;

fn main() {
    let app = AppConfig {
        id: "app-id".into(),
        key: "app-key".into(),
        secret: "app-secret".into(),
        enable_client_messages: true,
        enable_user_authentication: true,
        max_channels_per_connection: 50,
        ..AppConfig::default()
    };
    let apps = Apps::new(&[app]);
    let cap = Cap {
        entries: 100,
        bytes: 1 << 20,
    };
    let mut buffers = simd_json::Buffers::default();
    afl::fuzz!(|data: &[u8]| {
        let app = apps.iter().next().expect("one app").clone();
        let mut state = ShardState::new(0, 1, 64 * 1024, cap);
        let keys = [1u64, 2].map(|n| state.hub.add(SocketId::new(0, n, 7 + n as u32), app.idx, 0));
        for (i, line) in data.split(|b| *b == b'\n').enumerate() {
            let key = keys[i % 2];
            let raw = line.to_vec();
            let mut parsed = line.to_vec();
            let Ok(message) = ClientMessage::parse(&mut parsed, &mut buffers) else {
                continue;
            };
            state.now = (i / 8) as u32;
            let effects = on_message(&mut state, &app, key, message, &raw);
            for report in effects.reports {
                if let ApiCommand::Ask {
                    from,
                    question: Question::Subscribe { .. } | Question::PresenceJoin(_),
                } = report
                {
                    let Some(socket) = state.hub.conn(key).map(|c| c.socket_id()) else {
                        continue;
                    };
                    let conn = ConnRef::new(key, socket);
                    let _ = join::answered(&mut state, &apps, conn, from.request, Ok("{}".into()));
                }
            }
        }
        for key in keys {
            if let Some(conn) = state.hub.remove(key) {
                let _ = on_disconnect(&conn);
            }
        }
        assert!(state.hub.is_empty());
    });
}
