//! Hostile requests over real sockets: each is refused with the status or close code the
//! protocol names, and the server keeps serving everyone else.

mod common;
use common::*;

#[test]
fn two_content_lengths_that_disagree_are_refused_with_400() {
    let server = Server::start(&[]);
    let mut http = server.http();
    http.send_raw(
        b"POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
    );
    let r = http.read_response();
    assert_eq!(r.status, 400, "{}", r.body);
    // Equal ones are one length.
    let mut api = server.api();
    api.trigger("still", "e", "served");
}

#[test]
fn a_websocket_upgrade_below_an_app_path_is_404() {
    let server = Server::start(&[]);
    for path in ["/app/app-key/extra", "/app/", "/app/app-key/"] {
        let mut http = server.http();
        let r = http.request(
            "GET",
            path,
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
            b"",
        );
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    server.ws().ping();
}
