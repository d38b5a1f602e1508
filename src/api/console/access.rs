//! Who may use the console: a request carrying `Authorization: Bearer <server.console_token>`
//! or the session cookie the login form sets. The cookie holds an HMAC of the token, never
//! the token, so a copied cookie does not reveal it; changing the token (and restarting) ends
//! every session. Both are compared in constant time.
//!
//! Guessing is slowed down: after [`MAX_FAILURES_PER_SECOND`] wrong tokens or cookies in a
//! second, every attempt that second answers 429 without being checked.

use crate::auth;
use crate::clock::Tick;
use crate::rate::PerSecond;
use std::cell::Cell;

/// Wrong tokens or cookies checked per second, over all clients.
pub const MAX_FAILURES_PER_SECOND: u32 = 10;

/// The session cookie's name; it is sent back only under `/console`.
pub const COOKIE: &str = "ringcast_console";

/// What the session cookie signs.
const SESSION: &[u8] = b"ringcast console session";

pub struct Access {
    token: String,
    /// Wrong attempts this second.
    failures: Cell<PerSecond>,
}

/// What a request presents: its `Authorization` and `Cookie` headers.
#[derive(Debug, Default)]
pub struct Credentials {
    pub authorization: Option<String>,
    pub cookie: Option<String>,
}

impl Credentials {
    /// Read from a request head's bytes. Only the console reads these headers, so the shards'
    /// head parser leaves them alone (browsers send cookies with every WebSocket upgrade).
    pub fn from_head(bytes: &[u8]) -> Credentials {
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut req = httparse::Request::new(&mut headers);
        let mut found = Credentials::default();
        if req.parse(bytes).is_err() {
            return found;
        }
        for h in req.headers.iter() {
            let value = || {
                std::str::from_utf8(h.value)
                    .ok()
                    .map(|v| v.trim().to_string())
            };
            if h.name.eq_ignore_ascii_case("authorization") {
                found.authorization = value();
            } else if h.name.eq_ignore_ascii_case("cookie") {
                found.cookie = value();
            }
        }
        found
    }
}

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// None, or wrong ones.
    Denied,
    /// Not checked: too many wrong ones this second (429).
    TooMany,
}

impl Access {
    /// `None` when no token is configured: the console is off.
    pub fn new(token: &str) -> Option<Access> {
        (!token.is_empty()).then(|| Access {
            token: token.into(),
            failures: Cell::default(),
        })
    }

    /// Whether the request may use the console (`now`: the current second).
    pub fn verdict(&self, given: &Credentials, now: Tick) -> Verdict {
        let bearer = given
            .authorization
            .as_deref()
            .and_then(|v| v.strip_prefix("Bearer "));
        let session = cookie(given, COOKIE);
        if bearer.is_none() && session.is_none() {
            return Verdict::Denied;
        }
        self.checked(now, || {
            bearer.is_some_and(|given| auth::same_token(&self.token, given.trim()))
                || session.is_some_and(|v| auth::verify_signature(&self.token, SESSION, v))
        })
    }

    /// Runs `check` unless the second's failures are spent, and counts a failure.
    fn checked(&self, now: Tick, check: impl FnOnce() -> bool) -> Verdict {
        let mut failures = self.failures.get();
        if failures.spent(now, MAX_FAILURES_PER_SECOND) {
            return Verdict::TooMany;
        }
        if check() {
            return Verdict::Allowed;
        }
        failures.take(now, MAX_FAILURES_PER_SECOND);
        self.failures.set(failures);
        Verdict::Denied
    }

    /// The login form's answer: the `Set-Cookie` value if `form` (urlencoded) holds the token.
    pub fn log_in(&self, form: &[u8], now: Tick) -> Result<String, Verdict> {
        let form = std::str::from_utf8(form).map_err(|_| Verdict::Denied)?;
        // Forms encode a space as `+`.
        let params = crate::http::signed::parse_query(&form.trim().replace('+', "%20"));
        let given = params.iter().find(|(k, _)| k == "token");
        let given = given.ok_or(Verdict::Denied)?;
        match self.checked(now, || auth::same_token(&self.token, &given.1)) {
            Verdict::Allowed => {
                let value = auth::sign(&self.token, SESSION);
                Ok(format!(
                    "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict"
                ))
            }
            refused => Err(refused),
        }
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn log_out() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of cookie `name` in the request's `Cookie` header.
fn cookie<'a>(given: &'a Credentials, name: &str) -> Option<&'a str> {
    let header = given.cookie.as_deref()?;
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(authorization: Option<&str>, cookie: Option<&str>) -> Credentials {
        Credentials {
            authorization: authorization.map(Into::into),
            cookie: cookie.map(Into::into),
        }
    }

    #[test]
    fn credentials_are_read_from_the_head() {
        let raw = b"GET /console HTTP/1.1\r\nCookie: a=b; ringcast_console=x\r\nauthorization:  Bearer t \r\n\r\n";
        let c = Credentials::from_head(raw);
        assert_eq!(c.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(cookie(&c, COOKIE), Some("x"));
        let none = Credentials::from_head(b"\x01 nonsense\r\n\r\n");
        assert!(none.authorization.is_none() && none.cookie.is_none());
    }

    #[test]
    fn no_token_no_console() {
        assert!(Access::new("").is_none());
    }

    impl Access {
        /// [`Access::verdict`] in a second of its own, so no check spends another's budget.
        fn allows(&self, head: &Credentials) -> bool {
            let second = self.failures.get().second() + 1;
            self.verdict(head, second) == Verdict::Allowed
        }
    }

    #[test]
    fn bearer_or_the_login_cookie_and_nothing_else() {
        let access = Access::new("t0ken").unwrap();
        assert!(access.allows(&head(Some("Bearer t0ken"), None)));
        assert!(!access.allows(&head(Some("Bearer t0ke"), None)));
        assert!(!access.allows(&head(Some("Bearer t0ken0"), None)));
        assert!(!access.allows(&head(Some("Basic t0ken"), None)));
        assert!(!access.allows(&head(None, None)));
        assert!(access.log_in(b"token=wrong", 1).is_err());
        assert!(access.log_in(b"nothing", 1).is_err());
        assert!(access.log_in(&[0xff, 0xfe], 1).is_err());
        let set = access.log_in(b"token=t0ken", 1).unwrap();
        assert!(
            !set.contains("t0ken"),
            "the cookie must not carry the token: {set}"
        );
        let pair = set.split(';').next().unwrap();
        assert!(access.allows(&head(None, Some(&format!("a=b; {pair}")))));
        // Another token's session is not this one's.
        let other = Access::new("other").unwrap();
        let other = other.log_in(b"token=other", 1).unwrap();
        let other_pair = other.split(';').next().unwrap();
        assert!(!access.allows(&head(None, Some(other_pair))));
        assert!(!access.allows(&head(None, Some("ringcast_console=zz"))));
    }

    #[test]
    fn an_encoded_token_logs_in() {
        let access = Access::new("a b&c").unwrap();
        assert!(access.log_in(b"token=a+b%26c", 1).is_ok());
    }

    #[test]
    fn wrong_guesses_beyond_the_budget_are_not_checked_until_the_next_second() {
        let access = Access::new("t0ken").unwrap();
        let wrong = head(Some("Bearer guess"), None);
        let right = head(Some("Bearer t0ken"), None);
        for _ in 0..MAX_FAILURES_PER_SECOND {
            assert_eq!(access.verdict(&wrong, 7), Verdict::Denied);
        }
        assert_eq!(access.verdict(&right, 7), Verdict::TooMany);
        assert_eq!(access.log_in(b"token=t0ken", 7), Err(Verdict::TooMany));
        // No credentials at all is no guess.
        assert_eq!(access.verdict(&head(None, None), 7), Verdict::Denied);
        assert_eq!(access.verdict(&right, 8), Verdict::Allowed);
    }
}
