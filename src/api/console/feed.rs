//! The console's live event log: who watches (an app, optionally one channel) and what each
//! watcher has not been sent yet. Entries are rendered once, for every watcher that wants
//! them. Each watcher's queue is bounded: when its browser reads too slowly, new entries are
//! dropped and counted, and the count is sent with the next entries it gets. Nothing here ever
//! waits, so a slow watcher slows neither the API core nor a shard.

use crate::app::AppIdx;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Watchers at once over all apps (each is an open event stream).
pub const MAX_WATCHERS: usize = 16;
/// Entries queued for one watcher before new ones are dropped.
pub const MAX_QUEUED: usize = 1000;
/// Characters of an event's data an entry shows (the rest is cut, and said so).
pub const MAX_DATA_CHARS: usize = 2000;

/// One open event stream.
pub struct Watcher {
    pub app: AppIdx,
    /// Only this channel's entries (connection entries have no channel and are left out).
    pub channel: Option<String>,
    queued: RefCell<VecDeque<Rc<str>>>,
    /// Entries dropped since the stream last heard how many.
    dropped: Cell<u64>,
    /// Dropped over the stream's life.
    dropped_total: Cell<u64>,
    wake: LocalSender<()>,
}

impl Watcher {
    fn wants(&self, app: AppIdx, channel: Option<&str>) -> bool {
        self.app == app
            && match (&self.channel, channel) {
                (None, _) => true,
                (Some(want), Some(ch)) => want == ch,
                (Some(_), None) => false,
            }
    }

    fn offer(&self, entry: &Rc<str>) {
        let mut queued = self.queued.borrow_mut();
        if queued.len() >= MAX_QUEUED {
            self.dropped.set(self.dropped.get() + 1);
            self.dropped_total.set(self.dropped_total.get() + 1);
            return;
        }
        queued.push_back(entry.clone());
        // Full means a wake-up is pending already.
        let _ = self.wake.try_send(());
    }

    /// Everything queued, and how many entries were dropped since the last call.
    pub fn take(&self) -> (Vec<Rc<str>>, u64) {
        let entries = self.queued.borrow_mut().drain(..).collect();
        (entries, self.dropped.replace(0))
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.get()
    }
}

#[derive(Default)]
pub struct Feed {
    watchers: RefCell<Vec<Rc<Watcher>>>,
}

impl Feed {
    /// A new watcher and what wakes its stream, or `None` at [`MAX_WATCHERS`].
    pub fn watch(
        &self,
        app: AppIdx,
        channel: Option<String>,
    ) -> Option<(Rc<Watcher>, LocalReceiver<()>)> {
        let mut watchers = self.watchers.borrow_mut();
        if watchers.len() >= MAX_WATCHERS {
            return None;
        }
        let (wake, woken) = local_channel::new_bounded(1);
        let watcher = Rc::new(Watcher {
            app,
            channel,
            queued: RefCell::default(),
            dropped: Cell::new(0),
            dropped_total: Cell::new(0),
            wake,
        });
        watchers.push(watcher.clone());
        Some((watcher, woken))
    }

    pub fn unwatch(&self, watcher: &Rc<Watcher>) {
        self.watchers
            .borrow_mut()
            .retain(|w| !Rc::ptr_eq(w, watcher));
    }

    /// The apps someone watches, each once.
    pub fn apps(&self) -> Vec<AppIdx> {
        let mut apps: Vec<AppIdx> = self.watchers.borrow().iter().map(|w| w.app).collect();
        apps.sort();
        apps.dedup();
        apps
    }

    pub fn len(&self) -> usize {
        self.watchers.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.watchers.borrow().is_empty()
    }

    /// Offers an entry of `app` (about `channel`, if any) to every watcher that wants it;
    /// `render` runs once, and only if someone does.
    pub fn offer(&self, app: AppIdx, channel: Option<&str>, render: impl FnOnce() -> String) {
        let watchers = self.watchers.borrow();
        let mut wanting = watchers.iter().filter(|w| w.wants(app, channel)).peekable();
        if wanting.peek().is_none() {
            return;
        }
        let entry: Rc<str> = render().into();
        for w in wanting {
            w.offer(&entry);
        }
    }
}

/// `data` for an entry: as it is when short, else its first [`MAX_DATA_CHARS`] characters
/// and a note of how long it was.
pub fn shown_data(data: &str) -> String {
    match data.char_indices().nth(MAX_DATA_CHARS) {
        None => data.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &data[..cut], data.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_to_the_watchers_that_want_them_rendered_once() {
        let feed = Feed::default();
        let (all, _w1) = feed.watch(AppIdx(0), None).unwrap();
        let (one, _w2) = feed.watch(AppIdx(0), Some("a".into())).unwrap();
        let (other_app, _w3) = feed.watch(AppIdx(1), None).unwrap();
        let renders = Cell::new(0);
        let render = |text: &str| {
            renders.set(renders.get() + 1);
            text.to_string()
        };
        feed.offer(AppIdx(0), Some("a"), || render("on a"));
        feed.offer(AppIdx(0), Some("b"), || render("on b"));
        feed.offer(AppIdx(0), None, || render("connected"));
        feed.offer(AppIdx(2), None, || render("nobody"));
        assert_eq!(renders.get(), 3);
        let texts = |w: &Watcher| w.take().0.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(texts(&all), ["on a", "on b", "connected"]);
        assert_eq!(texts(&one), ["on a"]);
        assert!(texts(&other_app).is_empty());
        assert_eq!(feed.apps(), [AppIdx(0), AppIdx(1)]);
        feed.unwatch(&other_app);
        assert_eq!(feed.apps(), [AppIdx(0)]);
    }

    #[test]
    fn a_slow_watcher_loses_entries_counted_and_keeps_the_first() {
        let feed = Feed::default();
        let (w, _woken) = feed.watch(AppIdx(0), None).unwrap();
        for i in 0..MAX_QUEUED + 5 {
            feed.offer(AppIdx(0), None, || i.to_string());
        }
        let (entries, dropped) = w.take();
        assert_eq!((entries.len(), dropped), (MAX_QUEUED, 5));
        assert_eq!(&*entries[0], "0");
        assert_eq!(w.take().1, 0, "the count is reported once");
        assert_eq!(w.dropped_total(), 5);
    }

    #[test]
    fn watchers_are_bounded() {
        let feed = Feed::default();
        let held: Vec<_> = (0..MAX_WATCHERS)
            .map(|_| feed.watch(AppIdx(0), None).unwrap())
            .collect();
        assert!(feed.watch(AppIdx(0), None).is_none());
        feed.unwatch(&held[0].0);
        assert!(feed.watch(AppIdx(0), None).is_some());
    }

    #[test]
    fn long_data_is_cut_on_a_character_boundary() {
        assert_eq!(shown_data("short"), "short");
        let long = "é".repeat(MAX_DATA_CHARS + 10);
        let shown = shown_data(&long);
        assert!(shown.starts_with(&"é".repeat(MAX_DATA_CHARS)));
        assert!(shown.ends_with(&format!("… ({} bytes)", long.len())));
    }
}
