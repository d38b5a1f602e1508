//! The effective configuration as TOML, for `ringcast check-config`: every key with its value
//! after defaults and environment overrides, and no secret (app secrets, webhook header
//! values and passwords in URLs are masked).

use super::Config;
use crate::logging::redacted_url;

/// What a secret prints as.
pub const MASK: &str = "***";

impl Config {
    /// The configuration as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        for app in &mut shown.apps {
            app.secret = MASK.into();
            for hook in &mut app.webhooks {
                hook.url = redacted_url(&hook.url);
                for value in hook.headers.values_mut() {
                    *value = MASK.into();
                }
            }
        }
        if !shown.server.console_token.is_empty() {
            shown.server.console_token = MASK.into();
        }
        shown.cluster.redis_url = redacted_url(&shown.cluster.redis_url);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot show the settings: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_everything_else_shown() {
        let text = "[server]\nconsole_token = \"c0nsole\"\n\
                    [cluster]\nredis_url = \"redis://:pw@h:6379/0\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s3cret\"\n\
                    [[apps.webhooks]]\nurl = \"https://h/x?token=t0k\"\n\
                    headers = { Authorization = \"Bearer abc\" }\n";
        let config = Config::parse(Some(("f.toml".into(), text)), Vec::new()).unwrap();
        let shown = config.to_masked_toml();
        for secret in ["c0nsole", "s3cret", "pw", "t0k", "Bearer abc"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("activity_timeout = 120"), "{shown}");
        assert!(shown.contains("key = \"k\""), "{shown}");
        // What it prints loads back as the same settings (secrets aside).
        let back = Config::parse(Some(("shown".into(), &shown)), Vec::new()).unwrap();
        assert_eq!(back.server.activity_timeout, 120);
        assert_eq!(back.apps[0].key, "k");
    }
}
