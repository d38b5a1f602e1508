//! An HTTP API request as the server takes it apart: the head parsed, the app and signature
//! checked from the head (as a shard does before reading a large body), the whole request's
//! signature with its body, and the body parsed and validated as a publish or a batch.

use ringcast::api::publish::validate::{self, BatchBody, EventBody};
use ringcast::app::Apps;
use ringcast::auth;
use ringcast::config::AppConfig;
use ringcast::http::{parse_head, signed};

fn main() {
    let app = AppConfig {
        id: "app-id".into(),
        key: "app-key".into(),
        secret: "app-secret".into(),
        ..AppConfig::default()
    };
    let apps = Apps::new(&[app]);
    afl::fuzz!(|data: &[u8]| {
        let Ok(Some(head)) = parse_head(data) else {
            return;
        };
        let body = data.get(head.head_len..).unwrap_or_default();
        let now = 1_700_000_000;
        let _ = signed::check_head(&apps, &head.method, &head.path, &head.query, now);
        let params = signed::parse_query(&head.query);
        let _ = auth::verify_request("app-secret", &head.method, &head.path, &params, body, now);
        let app = apps.iter().next().expect("one app");
        if let Ok(event) = validate::parse::<EventBody>(body) {
            let _ = validate::validate(app, &event);
        }
        if let Ok(batch) = validate::parse::<BatchBody>(body) {
            for event in &batch.batch {
                let _ = validate::validate(app, event);
            }
        }
    });
}
