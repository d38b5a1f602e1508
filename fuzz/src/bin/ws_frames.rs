//! The WebSocket frame decoder, fed the input in pieces as a socket would deliver it (the
//! first byte picks the piece size), carrying an incomplete frame over as a session does.

use ringcast::ws::frame::{Decoder, Incoming};
use std::ops::ControlFlow;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&piece, input)) = data.split_first() else {
            return;
        };
        let piece = usize::from(piece).max(1);
        let mut decoder = Decoder::new(64 * 1024);
        let mut pending: Vec<u8> = Vec::new();
        for chunk in input.chunks(piece) {
            pending.extend_from_slice(chunk);
            let mut seen = 0usize;
            let used = match decoder.decode(&mut pending, |m| {
                seen += match m {
                    Incoming::Text(t) => t.len(),
                    Incoming::Ping(p) => p.len(),
                    _ => 1,
                };
                ControlFlow::Continue(())
            }) {
                Ok(used) => used,
                // A protocol error closes the connection: nothing more is read.
                Err(e) => {
                    let _ = (e.close_code(), e.reason());
                    return;
                }
            };
            assert!(used <= pending.len());
            pending.drain(..used);
        }
    });
}
