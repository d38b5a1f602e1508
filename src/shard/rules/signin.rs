//! `pusher:signin` (docs/protocol.md, user authentication): a signed `user_data` with a non-empty
//! string `id` signs the connection in (and may carry a watchlist); a bad signature or user
//! closes the connection with 4009. Signing in again as the same user changes nothing; as
//! another user, the first one's connection leaves.

use super::Turn;
use crate::auth;
use crate::bus::{ApiCommand, ConnRef};
use crate::protocol::{ErrorCode, frames};
use std::rc::Rc;

/// Most users a connection may watch; beyond it, 4302 and the rest is ignored.
pub const MAX_WATCHLIST: usize = 100;

#[derive(serde::Deserialize)]
struct UserData {
    #[serde(default)]
    id: serde_json::Value,
    #[serde(default)]
    watchlist: serde_json::Value,
}

pub fn signin(t: &mut Turn<'_>, auth: &str, user_data: &str) {
    let socket_id = t.socket.to_string();
    let key = t.app.key();
    let signed = |secret: &str| auth::verify_user_auth(key, secret, &socket_id, user_data, auth);
    if !t.app.accepted_secrets().any(signed) {
        return t
            .effects
            .close(ErrorCode::Unauthorized, "Invalid signature");
    }
    let parsed = serde_json::from_str::<UserData>(user_data).ok();
    let id = parsed
        .as_ref()
        .and_then(|p| p.id.as_str())
        .filter(|id| !id.is_empty());
    let Some(id) = id.map(Rc::<str>::from) else {
        let reason = "user_data needs a non-empty string id";
        return t.effects.close(ErrorCode::Unauthorized, reason);
    };
    let before = t.conn().and_then(|conn| conn.sign_in(id.clone()));
    t.effects.json(frames::signin_success(user_data));
    match before {
        // A replayed sign-in: signed in already, nothing to tell.
        Some(before) if before == id => return,
        // Signed in as someone else before: that user's connection is gone.
        Some(before) => t.effects.report(ApiCommand::UserOffline {
            app: t.app.idx,
            user_id: (*before).into(),
            socket: t.socket,
        }),
        None => {}
    }
    let mut watchlist: Vec<Box<str>> = parsed
        .as_ref()
        .and_then(|p| p.watchlist.as_array())
        .map(|w| {
            w.iter()
                .filter_map(|u| u.as_str().map(Box::<str>::from))
                .collect()
        })
        .unwrap_or_default();
    if watchlist.len() > MAX_WATCHLIST {
        watchlist.truncate(MAX_WATCHLIST);
        t.effects.error(
            ErrorCode::Watchlist,
            &format!("Watchlist is limited to {MAX_WATCHLIST} users"),
        );
    }
    t.effects.report(ApiCommand::UserOnline {
        conn: ConnRef::new(t.key, t.socket),
        app: t.app.idx,
        user_id: (*id).into(),
        watchlist,
    });
}
