//! Who may use the console: a request carrying `Authorization: Bearer <server.console_token>`
//! or the session cookie the login form sets. The cookie holds an HMAC of the token, never
//! the token, so a copied cookie does not reveal it; changing the token (and restarting) ends
//! every session. Both are compared in constant time.

use crate::auth;
use crate::http::RequestHead;

/// The session cookie's name; it is sent back only under `/console`.
pub const COOKIE: &str = "ringcast_console";

/// What the session cookie signs.
const SESSION: &[u8] = b"ringcast console session";

pub struct Access {
    token: String,
}

impl Access {
    /// `None` when no token is configured: the console is off.
    pub fn new(token: &str) -> Option<Access> {
        (!token.is_empty()).then(|| Access {
            token: token.into(),
        })
    }

    /// Whether the request may use the console.
    pub fn allows(&self, head: &RequestHead) -> bool {
        let bearer = head
            .authorization
            .as_deref()
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| auth::same_token(&self.token, given.trim()));
        bearer || cookie(head, COOKIE).is_some_and(|v| self.is_session(v))
    }

    fn is_session(&self, value: &str) -> bool {
        auth::verify_signature(&self.token, SESSION, value)
    }

    /// The login form's answer: the `Set-Cookie` value if `form` (urlencoded) holds the token.
    pub fn log_in(&self, form: &[u8]) -> Option<String> {
        let form = std::str::from_utf8(form).ok()?;
        // Forms encode a space as `+`.
        let params = crate::http::signed::parse_query(&form.trim().replace('+', "%20"));
        let given = params.iter().find(|(k, _)| k == "token")?;
        if !auth::same_token(&self.token, &given.1) {
            return None;
        }
        let value = auth::sign(&self.token, SESSION);
        Some(format!(
            "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict"
        ))
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn log_out() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of cookie `name` in the request's `Cookie` header.
fn cookie<'a>(head: &'a RequestHead, name: &str) -> Option<&'a str> {
    let header = head.cookie.as_deref()?;
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(authorization: Option<&str>, cookie: Option<&str>) -> RequestHead {
        RequestHead {
            authorization: authorization.map(Into::into),
            cookie: cookie.map(Into::into),
            ..RequestHead::default()
        }
    }

    #[test]
    fn no_token_no_console() {
        assert!(Access::new("").is_none());
    }

    #[test]
    fn bearer_or_the_login_cookie_and_nothing_else() {
        let access = Access::new("t0ken").unwrap();
        assert!(access.allows(&head(Some("Bearer t0ken"), None)));
        assert!(!access.allows(&head(Some("Bearer t0ke"), None)));
        assert!(!access.allows(&head(Some("Bearer t0ken0"), None)));
        assert!(!access.allows(&head(Some("Basic t0ken"), None)));
        assert!(!access.allows(&head(None, None)));
        assert!(access.log_in(b"token=wrong").is_none());
        assert!(access.log_in(b"nothing").is_none());
        assert!(access.log_in(&[0xff, 0xfe]).is_none());
        let set = access.log_in(b"token=t0ken").unwrap();
        assert!(
            !set.contains("t0ken"),
            "the cookie must not carry the token: {set}"
        );
        let pair = set.split(';').next().unwrap();
        assert!(access.allows(&head(None, Some(&format!("a=b; {pair}")))));
        // Another token's session is not this one's.
        let other = Access::new("other")
            .unwrap()
            .log_in(b"token=other")
            .unwrap();
        let other_pair = other.split(';').next().unwrap();
        assert!(!access.allows(&head(None, Some(other_pair))));
        assert!(!access.allows(&head(None, Some("ringcast_console=zz"))));
    }

    #[test]
    fn an_encoded_token_logs_in() {
        let access = Access::new("a b&c").unwrap();
        assert!(access.log_in(b"token=a+b%26c").is_some());
    }
}
