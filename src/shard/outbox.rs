//! A connection's pending outbound bytes: shared frames queued by reference, never copied
//! per subscriber, bounded by `outbound_buffer_kb`.

use std::collections::VecDeque;
use std::rc::Rc;

/// A complete WebSocket frame (header and payload), shared by every local subscriber.
pub type Frame = Rc<[u8]>;

#[derive(Default)]
pub struct Outbox {
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    offset: usize,
    /// Unsent bytes in total.
    bytes: usize,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Unsent bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn push(&mut self, frame: Frame) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Copies up to `max` unsent bytes into `dst`, so several pending frames leave in one write.
    fn fill(&self, dst: &mut Vec<u8>, max: usize) {
        let mut offset = self.offset;
        for frame in &self.frames {
            let room = max.saturating_sub(dst.len());
            if room == 0 {
                break;
            }
            let rest = &frame[offset..];
            dst.extend_from_slice(&rest[..rest.len().min(room)]);
            offset = 0;
        }
    }

    /// Calls `write` with the next bytes to write: the front frame's rest when it is alone
    /// (no copy), else up to `max` bytes of several frames gathered in `scratch`, so pending
    /// frames leave in one write.
    pub fn with_next_bytes<R>(
        &self,
        scratch: &mut Vec<u8>,
        max: usize,
        write: impl FnOnce(&[u8]) -> R,
    ) -> R {
        if self.frames.len() == 1 {
            return write(&self.frames[0][self.offset..]);
        }
        scratch.clear();
        self.fill(scratch, max);
        write(scratch)
    }

    /// Marks `n` bytes as written.
    pub fn consume(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let rest = front.len() - self.offset;
            if n >= rest {
                n -= rest;
                self.offset = 0;
                self.frames.pop_front();
            } else {
                self.offset += n;
                n = 0;
            }
        }
        if self.frames.is_empty() && self.frames.capacity() > 8 {
            // An idle connection should not keep a burst's worth of queue.
            self.frames = VecDeque::new();
        }
    }

    /// Drops every frame not yet started. A frame already partly written stays: cutting it
    /// would corrupt the stream, and the close frame queued after it must arrive intact.
    pub fn clear(&mut self) {
        let in_flight = if self.offset > 0 {
            self.frames.pop_front()
        } else {
            None
        };
        self.frames = VecDeque::new();
        self.bytes = 0;
        if let Some(front) = in_flight {
            self.bytes = front.len() - self.offset;
            self.frames.push_back(front);
        } else {
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_consume_across_frames() {
        let mut o = Outbox::default();
        o.push(Rc::from(&b"abc"[..]));
        o.push(Rc::from(&b"defg"[..]));
        let mut buf = Vec::new();
        o.fill(&mut buf, 5);
        assert_eq!(buf, b"abcde");
        o.consume(4);
        assert_eq!(o.bytes(), 3);
        buf.clear();
        o.fill(&mut buf, 100);
        assert_eq!(buf, b"efg");
        // A lone frame is handed over as it is, whatever the scratch holds.
        let mut scratch = b"junk".to_vec();
        o.with_next_bytes(&mut scratch, 100, |bytes| assert_eq!(bytes, b"efg"));
        o.consume(3);
        assert!(o.is_empty() && o.bytes() == 0);
        // Clearing keeps a partly written frame whole.
        o.push(Rc::from(&b"hij"[..]));
        o.push(Rc::from(&b"klm"[..]));
        o.consume(1);
        o.clear();
        assert_eq!(o.bytes(), 2);
        buf.clear();
        o.fill(&mut buf, 100);
        assert_eq!(buf, b"ij");
    }
}
