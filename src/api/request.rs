//! An HTTP API request once its signature has been checked: the app it is for and its
//! decoded query parameters, as every handler receives it.

use crate::app::App;
use crate::http::{ApiError, ApiRequest};
use crate::protocol::ChannelName;
use std::sync::Arc;

pub use crate::http::signed::{decode, parse_query};

/// An authenticated request, ready for a handler.
pub struct Authed<'a> {
    pub app: &'a Arc<App>,
    pub params: Vec<(String, String)>,
    pub request: &'a ApiRequest,
}

impl Authed<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A channel named in the path (percent-encoded), checked against the app's rules.
    pub fn channel(&self, raw: &str) -> Result<String, ApiError> {
        let name = decode(raw);
        ChannelName::parse(&name, self.app.config.max_channel_name_length)
            .map_err(|e| ApiError::BadRequest(format!("{e}: {name}")))?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_is_lenient() {
        let q = parse_query("a=1&info=user_count,subscription_count&x=%2Fy&flag&c=a:b");
        assert_eq!(
            q[1],
            ("info".into(), "user_count,subscription_count".into())
        );
        assert_eq!(q[2], ("x".into(), "/y".into()));
        assert_eq!(q[3], ("flag".into(), "".into()));
        assert_eq!(q[4], ("c".into(), "a:b".into()));
    }
}
