//! Every HMAC of the protocol: channel authorization, user sign-in, HTTP API request signing
//! and webhook signatures. Verification always compares in constant time (`verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// `hex(HMAC-SHA256(secret, message))`.
pub fn sign(secret: &str, message: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(message);
    hex::encode(m.finalize().into_bytes())
}

/// Checks a hex signature over the concatenation of `parts`, in constant time.
fn verify_hex(secret: &str, parts: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    let mut m = mac(secret);
    for p in parts {
        m.update(p);
    }
    m.verify_slice(&given).is_ok()
}

/// Whether `given` equals `expected`, compared in constant time: their MACs under one fixed
/// key are compared instead of the strings (for the console's token, not an HMAC itself).
pub fn same_token(expected: &str, given: &str) -> bool {
    const KEY: &str = "ringcast token comparison";
    let tag = mac(KEY).chain_update(expected.as_bytes()).finalize();
    let mut m = mac(KEY);
    m.update(given.as_bytes());
    m.verify_slice(&tag.into_bytes()).is_ok()
}

/// Checks `hex(HMAC-SHA256(secret, message))` in constant time.
pub fn verify_signature(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    verify_hex(secret, &[message], signature_hex)
}

/// Checks a client token of the form `"{key}:{hex signature}"` over `parts`.
fn verify_token(app_key: &str, secret: &str, parts: &[&[u8]], token: &str) -> bool {
    match token.split_once(':') {
        Some((key, sig)) if key == app_key => verify_hex(secret, parts, sig),
        _ => false,
    }
}

/// The string a private or presence channel authorization signs:
/// `"{socket_id}:{channel}"` or `"{socket_id}:{channel}:{channel_data}"`.
pub fn channel_auth_message(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// Verifies the `auth` field of a `pusher:subscribe`.
pub fn verify_channel_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    token: &str,
) -> bool {
    let d = channel_data.map(str::as_bytes);
    let mut parts: Vec<&[u8]> = vec![socket_id.as_bytes(), b":", channel.as_bytes()];
    if let Some(d) = d {
        parts.extend_from_slice(&[b":", d]);
    }
    verify_token(app_key, secret, &parts, token)
}

/// Verifies the `auth` field of a `pusher:signin`: a signature over
/// `"{socket_id}::user::{user_data}"`.
pub fn verify_user_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    token: &str,
) -> bool {
    let parts: [&[u8]; 3] = [socket_id.as_bytes(), b"::user::", user_data.as_bytes()];
    verify_token(app_key, secret, &parts, token)
}

/// Hex MD5 of an HTTP body, as the `body_md5` query parameter carries it.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Why a signed HTTP API request was refused (all answer 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAuthError {
    MissingParameter(&'static str),
    UnsupportedVersion,
    BadTimestamp,
    StaleTimestamp,
    BodyMd5Mismatch,
    BadSignature,
}

impl std::fmt::Display for RequestAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingParameter(p) => write!(f, "missing {p}"),
            Self::UnsupportedVersion => write!(f, "auth_version must be 1.0"),
            Self::BadTimestamp => write!(f, "auth_timestamp is not a number"),
            Self::StaleTimestamp => write!(
                f,
                "auth_timestamp is more than 600 s from the server's clock"
            ),
            Self::BodyMd5Mismatch => write!(f, "body_md5 does not match the body"),
            Self::BadSignature => write!(f, "invalid signature"),
        }
    }
}

/// How far `auth_timestamp` may be from the server clock.
pub const MAX_CLOCK_SKEW_S: i64 = 600;

/// The canonical string Pusher signs: `"{METHOD}\n{path}\n{k=v&…}"` with every parameter but
/// `auth_signature`, keys lowercased and sorted, values as decoded (not re-escaped).
pub fn request_string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(String, &str)> = params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    sorted.sort();
    let query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

/// Verifies a signed HTTP API request (docs/http-api.md). `params` are the decoded query parameters;
/// the caller has already matched `auth_key` to this app's key.
pub fn verify_request(
    secret: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
    now_unix_s: i64,
) -> Result<(), RequestAuthError> {
    verify_request_head(secret, method, path, params, now_unix_s)?;
    match param(params, "body_md5") {
        Some(md5) if !md5.eq_ignore_ascii_case(&body_md5(body)) => {
            Err(RequestAuthError::BodyMd5Mismatch)
        }
        None if !body.is_empty() => Err(RequestAuthError::MissingParameter("body_md5")),
        _ => Ok(()),
    }
}

/// Everything [`verify_request`] checks but the body: the signature covers `body_md5`, so a
/// request can be refused from its head alone, before its body is read.
pub fn verify_request_head(
    secret: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
    now_unix_s: i64,
) -> Result<(), RequestAuthError> {
    let get = |name: &str| param(params, name);
    let signature =
        get("auth_signature").ok_or(RequestAuthError::MissingParameter("auth_signature"))?;
    let timestamp =
        get("auth_timestamp").ok_or(RequestAuthError::MissingParameter("auth_timestamp"))?;
    if let Some(v) = get("auth_version")
        && v != "1.0"
    {
        return Err(RequestAuthError::UnsupportedVersion);
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| RequestAuthError::BadTimestamp)?;
    // `abs_diff`: a timestamp from the client may be any i64 (i64::MIN must not overflow).
    if now_unix_s.abs_diff(ts) > MAX_CLOCK_SKEW_S.unsigned_abs() {
        return Err(RequestAuthError::StaleTimestamp);
    }
    let string = request_string_to_sign(method, path, params);
    if verify_hex(secret, &[string.as_bytes()], signature) {
        Ok(())
    } else {
        Err(RequestAuthError::BadSignature)
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Pusher's documentation of request signing.
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    fn params(sig: &str) -> Vec<(String, String)> {
        [
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
            ("auth_signature", sig),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    const BODY: &[u8] = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const SIG: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

    fn verify(sig: &str, body: &[u8], now: i64) -> Result<(), RequestAuthError> {
        verify_request(SECRET, "POST", "/apps/3/events", &params(sig), body, now)
    }

    #[test]
    fn request_signature_vector() {
        assert_eq!(body_md5(BODY), "ec365a775a4cd0599faeb73354201b6f");
        let s = request_string_to_sign("POST", "/apps/3/events", &params(SIG));
        assert_eq!(sign(SECRET, s.as_bytes()), SIG);
        assert_eq!(verify(SIG, BODY, 1353088179), Ok(()));
    }

    #[test]
    fn request_signature_refusals() {
        use RequestAuthError::*;
        let bad = SIG.replace('d', "e");
        assert_eq!(verify(&bad, BODY, 1353088179), Err(BadSignature));
        assert_eq!(verify(SIG, BODY, 1353088179 + 601), Err(StaleTimestamp));
        assert_eq!(verify(SIG, b"{}", 1353088179), Err(BodyMd5Mismatch));
        assert_eq!(verify("zz", BODY, 1353088179), Err(BadSignature));
    }

    #[test]
    fn channel_auth_vector() {
        let expected = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        let msg = channel_auth_message("1234.1234", "private-foobar", None);
        assert_eq!(sign(SECRET, msg.as_bytes()), expected);
        let token = format!("{KEY}:{expected}");
        assert!(verify_channel_auth(
            KEY,
            SECRET,
            "1234.1234",
            "private-foobar",
            None,
            &token
        ));
        assert!(!verify_channel_auth(
            KEY,
            SECRET,
            "1234.1235",
            "private-foobar",
            None,
            &token
        ));
        assert!(!verify_channel_auth(
            "other",
            SECRET,
            "1234.1234",
            "private-foobar",
            None,
            &token
        ));
    }

    #[test]
    fn user_auth_vector() {
        let sig = sign(SECRET, b"1234.1234::user::{\"id\":\"12345\"}");
        assert!(
            sig.starts_with("4708d583") && sig.ends_with("36ba"),
            "{sig}"
        );
        let token = format!("{KEY}:{sig}");
        assert!(verify_user_auth(
            KEY,
            SECRET,
            "1234.1234",
            "{\"id\":\"12345\"}",
            &token
        ));
        assert!(!verify_user_auth(
            KEY,
            SECRET,
            "1234.1234",
            "{\"id\":\"12346\"}",
            &token
        ));
    }
}
