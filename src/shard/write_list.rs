//! The shard's write list: connections whose outbox got its first frame while their task was
//! idle. The shard's writer ([`super::writer`]) drains it after a batch of broadcasts, one
//! `send` per connection, so a broadcast reaches an idle socket without waking its task, and
//! frames queued meanwhile for the same socket leave in the same write.

use super::conn::ConnKey;
use std::task::Waker;

#[derive(Default)]
pub struct WriteList {
    keys: Vec<ConnKey>,
    /// The writer, parked while the list is empty.
    writer: Option<Waker>,
}

impl WriteList {
    /// Lists a connection (at most once: see `Conn::needs_writer`) and wakes the writer.
    pub fn push(&mut self, key: ConnKey) {
        if self.keys.is_empty()
            && let Some(w) = self.writer.take()
        {
            w.wake();
        }
        self.keys.push(key);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Hands the listed connections to the writer, oldest first, leaving the list empty
    /// (`into` is the writer's own, emptied buffer: the two swap, so neither allocates).
    pub fn take(&mut self, into: &mut Vec<ConnKey>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.keys, into);
        into.reverse();
    }

    /// The writer waits for the next listing.
    pub fn park(&mut self, writer: &std::task::Waker) {
        if !self.writer.as_ref().is_some_and(|w| w.will_wake(writer)) {
            self.writer = Some(writer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_over_oldest_first_and_empties() {
        let mut list = WriteList::default();
        list.push(3);
        list.push(1);
        list.push(2);
        let mut taken = Vec::new();
        list.take(&mut taken);
        assert!(list.is_empty());
        // The writer pops from the end.
        assert_eq!(taken.pop(), Some(3));
        assert_eq!(taken.pop(), Some(1));
        assert_eq!(taken.pop(), Some(2));
    }
}
