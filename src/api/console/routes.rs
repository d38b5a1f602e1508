//! The console's requests on `metrics_port`:
//!
//! | request | answer |
//! |---|---|
//! | `GET /console` | the page (the login form, with 401, without a token or session) |
//! | `POST /console/login` | form field `token`: a session cookie and back to the page, else 401 |
//! | `POST /console/logout` | the cookie cleared |
//! | `GET /console/api/overview[?app=]` | every app's figures ([`super::figures`]) |
//! | `GET /console/api/events?app=&channel=` | the live event log ([`super::events`]) |
//! | `GET /console/api/apps/{id}/channels/{channel}/sockets` | its subscribers on this node |
//! | `/console/api/apps/{id}/…` | the HTTP API's `/apps/{id}/…`, without a signature |
//!
//! Everything but the page, the login and the logout needs the token (Bearer) or the
//! session cookie; without either the answer is 401.

use super::access::{self, Access, Credentials, Verdict};
use super::{events, figures};
use crate::api::ApiCore;
use crate::api::request::{Authed, decode, parse_query};
use crate::app::App;
use crate::http::{self, ApiError, ApiRequest, ApiResponse, RequestHead};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;

const PAGE: &str = include_str!("page.html");
const LOGIN: &str = include_str!("login.html");

const TOO_MANY: &str = "too many wrong tokens this second: try again in a second";

/// Headers of every page: never cached, never framed, scripts and styles only its own.
const PAGE_HEADERS: [(&str, &str); 3] = [
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    ),
];

/// A finished answer.
struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(r: ApiResponse) -> Reply {
        Reply {
            status: r.status,
            content_type: "application/json",
            headers: vec![("Cache-Control", "no-store".into())],
            body: r.body,
        }
    }

    fn page(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            headers: PAGE_HEADERS.map(|(k, v)| (k, v.to_string())).into(),
            body,
        }
    }

    fn see_other(cookie: String) -> Reply {
        Reply {
            status: 303,
            content_type: "text/plain",
            headers: vec![("Location", "/console".into()), ("Set-Cookie", cookie)],
            body: String::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (*k, &**v)).collect();
        http::response_with(
            self.status,
            self.content_type,
            &headers,
            self.body.as_bytes(),
            false,
        )
    }
}

fn login_page(message: &str) -> String {
    LOGIN.replace("{message}", message)
}

/// A console request: its head, what it presents, and its body (read already).
pub struct Request {
    pub head: RequestHead,
    pub credentials: Credentials,
    pub body: Vec<u8>,
}

/// Answers one console request on `stream`.
pub async fn answer(core: &Rc<ApiCore>, request: Request, stream: &mut TcpStream) {
    let reply = match &core.console.access {
        None => {
            let why = "the console is off: set server.console_token to open it";
            Reply::json(ApiError::NotFound(why.into()).response())
        }
        Some(access) => match serve(core, access, request, stream).await {
            Some(reply) => reply,
            // An event stream ran and has ended.
            None => return,
        },
    };
    let _ = stream.write_all(&reply.bytes()).await;
}

async fn serve(
    core: &Rc<ApiCore>,
    access: &Access,
    request: Request,
    stream: &mut TcpStream,
) -> Option<Reply> {
    let Request {
        head,
        credentials,
        body,
    } = request;
    let head = &head;
    let (method, path) = (head.method.as_str(), head.path.as_str());
    let now = crate::clock::unix_s() as crate::clock::Tick;
    let verdict = access.verdict(&credentials, now);
    let allowed = verdict == Verdict::Allowed;
    let reply = match (method, path) {
        ("POST", "/console/login") => match access.log_in(&body, now) {
            Ok(cookie) => Reply::see_other(cookie),
            Err(Verdict::TooMany) => Reply::page(429, login_page(TOO_MANY)),
            Err(_) => Reply::page(401, login_page("That token is not the console's.")),
        },
        ("POST", "/console/logout") => Reply::see_other(access::log_out()),
        ("GET", "/console" | "/console/") if allowed => Reply::page(200, PAGE.into()),
        _ if verdict == Verdict::TooMany => {
            Reply::json(ApiError::TooManyRequests(TOO_MANY.into()).response())
        }
        ("GET", "/console" | "/console/") => Reply::page(401, login_page("")),
        _ if !allowed => {
            let why = "the console needs its token (Authorization: Bearer) or a login";
            Reply::json(ApiError::Unauthorized(why.into()).response())
        }
        ("GET", "/console/api/overview") => {
            let params = parse_query(&head.query);
            let only = params
                .iter()
                .find(|(k, _)| k == "app")
                .map(|(_, v)| v.as_str());
            match figures::overview(core, only).await {
                Ok(v) => Reply::json(ApiResponse::json(200, v.to_string())),
                Err(e) => Reply::json(ApiError::from(e).response()),
            }
        }
        ("GET", "/console/api/events") => {
            let params = parse_query(&head.query);
            let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            let app = param("app").and_then(|id| core.apps.now().by_id(id).map(|a| a.idx));
            let Some(app) = app else {
                return Some(Reply::json(unknown_app().response()));
            };
            let channel = param("channel").filter(|c| !c.is_empty()).cloned();
            match events::stream(core, stream, app, channel).await {
                Ok(()) => return None,
                Err(e) => Reply::json(e.response()),
            }
        }
        _ => match path.strip_prefix("/console/api/apps/") {
            Some(rest) => Reply::json(app_request(core, head, body, rest).await),
            None => Reply::json(ApiError::NotFound(format!("no route for {path}")).response()),
        },
    };
    Some(reply)
}

fn unknown_app() -> ApiError {
    ApiError::NotFound("unknown app".into())
}

/// `/console/api/apps/{id}/{rest}`: the subscribers on this node, or the HTTP API.
async fn app_request(core: &ApiCore, head: &RequestHead, body: Vec<u8>, path: &str) -> ApiResponse {
    let segments: Vec<&str> = path.split('/').collect();
    let Some((id, rest)) = segments.split_first() else {
        return unknown_app().response();
    };
    let app: Option<Arc<App>> = core.apps.now().by_id(&decode(id)).cloned();
    let Some(app) = app else {
        return unknown_app().response();
    };
    if let Err(e) = crate::api::routes::serving(&app) {
        return e.response();
    }
    if let ("GET", ["channels", channel, "sockets"]) = (head.method.as_str(), rest) {
        let sockets = figures::sockets(core, app.idx, &decode(channel)).await;
        let ids: Vec<String> = sockets.iter().map(ToString::to_string).collect();
        let body = serde_json::json!({ "sockets": ids, "limit": figures::MAX_SOCKETS_LISTED });
        return ApiResponse::json(200, body.to_string());
    }
    let request = ApiRequest {
        method: head.method.clone(),
        path: format!("/apps/{path}"),
        query: head.query.clone(),
        body,
        idempotency_key: head.idempotency_key.clone(),
    };
    let req = Authed {
        app: &app,
        params: parse_query(&head.query),
        request: &request,
    };
    match crate::api::routes::handle(core, &req, rest).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}
