//! What the web console sees of a shard: each app's figures (connections, messages in and
//! out, kept as plain counters in the shard's state: no atomics, nothing shared), which apps
//! the console watches, and the answers to its questions ([`Inspection`]).
//!
//! Connection events of watched apps ride the shard's ordered reports, so a close never
//! overtakes the subscriptions it ends; when the reports back up they are dropped and
//! counted instead (see [`Tap::may_report`]): a console never slows a shard.

use super::hub::Hub;
use crate::app::AppIdx;
use crate::bus::inspect::{AppFigures, Inspection, ShardFigures};

/// Past this many reports queued, the console's connection events are dropped.
const BUSY_REPORTS: usize = super::reports::BACKLOG / 4;

/// Subscribers listed at most per shard, whatever the console asks.
const MAX_LISTED: usize = 1000;

#[derive(Default)]
pub struct Tap {
    /// By app index (an app a reload added gets its entry when first counted).
    figures: Vec<AppFigures>,
    watched: Vec<bool>,
    dropped: u64,
}

impl Tap {
    fn of(&mut self, app: AppIdx) -> &mut AppFigures {
        let at = app.0 as usize;
        if self.figures.len() <= at {
            self.figures.resize_with(at + 1, AppFigures::default);
        }
        &mut self.figures[at]
    }

    pub fn opened(&mut self, app: AppIdx) {
        self.of(app).connections += 1;
    }

    pub fn closed(&mut self, app: AppIdx) {
        let figures = self.of(app);
        figures.connections = figures.connections.saturating_sub(1);
    }

    pub fn received(&mut self, app: AppIdx) {
        self.of(app).messages_in += 1;
    }

    pub fn delivered(&mut self, app: AppIdx, n: usize) {
        self.of(app).messages_out += n as u64;
    }

    /// The console watches exactly `apps` from now on.
    pub fn watch(&mut self, apps: &[AppIdx]) {
        self.watched.clear();
        for app in apps {
            let at = app.0 as usize;
            if self.watched.len() <= at {
                self.watched.resize(at + 1, false);
            }
            self.watched[at] = true;
        }
    }

    /// Whether a connection event of `app` should be reported, given the reports queued now;
    /// counts it as dropped when the app is watched but the reports are busy.
    pub fn may_report(&mut self, app: AppIdx, reports_queued: usize) -> bool {
        if !self.watched.get(app.0 as usize).copied().unwrap_or(false) {
            return false;
        }
        if reports_queued >= BUSY_REPORTS {
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Answers a question of the console (a reply nobody waits for any more is dropped).
    pub fn answer(&self, hub: &Hub, question: Inspection) {
        match question {
            Inspection::Apps(reply) => {
                let mut apps = self.figures.clone();
                for (at, figures) in apps.iter_mut().enumerate() {
                    figures.channels = hub.channel_count(AppIdx(at as u16)) as u64;
                }
                let dropped = self.dropped;
                let _ = reply.send(ShardFigures { apps, dropped });
            }
            Inspection::Subscribers {
                app,
                channel,
                limit,
                reply,
            } => {
                let _ = reply.send(hub.subscriber_ids(app, &channel, limit.min(MAX_LISTED)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watched_apps_report_and_a_busy_queue_drops_and_counts() {
        let mut tap = Tap::default();
        assert!(!tap.may_report(AppIdx(0), 0));
        tap.watch(&[AppIdx(1)]);
        assert!(!tap.may_report(AppIdx(0), 0));
        assert!(tap.may_report(AppIdx(1), 0));
        assert!(!tap.may_report(AppIdx(1), BUSY_REPORTS));
        assert_eq!(tap.dropped, 1);
        tap.watch(&[]);
        assert!(!tap.may_report(AppIdx(1), 0));
    }

    #[test]
    fn figures_grow_per_app_and_connections_never_go_below_zero() {
        let mut tap = Tap::default();
        tap.opened(AppIdx(2));
        tap.received(AppIdx(2));
        tap.delivered(AppIdx(2), 5);
        tap.closed(AppIdx(2));
        tap.closed(AppIdx(2));
        let f = tap.figures[2];
        assert_eq!((f.connections, f.messages_in, f.messages_out), (0, 1, 5));
        assert_eq!(tap.figures[0], AppFigures::default());
    }
}
