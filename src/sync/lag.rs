//! The `authchain_sync_lag_seconds` gauge: how long ago the accounts were last
//! known to match the directory, read from the synchroniser's status.

use std::time::{Duration, Instant};

use super::{SyncPhase, SyncStatus, Synchronizer};

impl Synchronizer {
    /// Records the `authchain_sync_lag_seconds` gauge (label `source`) on every
    /// status change and every `every`, until the synchroniser stops: spawn it
    /// beside [`Synchronizer::run`]. With the feature `metrics` only.
    ///
    /// The lag is 0 while a persistent search follows the directory, the time
    /// since the last completed refresh while waiting for the next poll, and the
    /// time since the synchroniser was last live (or since this call, before the
    /// first refresh is done) while it reconnects or refreshes.
    pub fn record_lag(&self, every: Duration) -> impl Future<Output = ()> + Send + 'static {
        let source = self.source.id().to_owned();
        let mut status = self.status.subscribe();
        let every = every.max(Duration::from_millis(1));
        async move {
            let mut clock = LagClock::new(Instant::now());
            let mut ticks = tokio::time::interval(every);
            loop {
                let lag = clock.observe(&status.borrow_and_update(), Instant::now());
                crate::metrics::sync_lag(&source, lag);
                tokio::select! {
                    _ = ticks.tick() => {}
                    changed = status.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}

/// Since when the synchronised accounts are known to match the directory.
#[derive(Debug)]
struct LagClock {
    current_at: Instant,
    /// The session whose completed refresh was last counted.
    counted_session: u64,
}

impl LagClock {
    fn new(now: Instant) -> Self {
        LagClock {
            current_at: now,
            counted_session: 0,
        }
    }

    /// The lag at `now`, given the synchroniser's `status`. Live means current;
    /// a session's completed refresh is counted once, even when it was seen only
    /// after the source went back to waiting for its next poll.
    fn observe(&mut self, status: &SyncStatus, now: Instant) -> Duration {
        let refreshed_unseen = status.refreshed && status.sessions != self.counted_session;
        if status.phase == SyncPhase::Live || refreshed_unseen {
            self.current_at = now;
            self.counted_session = status.sessions;
        }
        now.saturating_duration_since(self.current_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: SyncPhase, sessions: u64, refreshed: bool) -> SyncStatus {
        SyncStatus {
            phase,
            sessions,
            refreshed,
            ..SyncStatus::default()
        }
    }

    #[test]
    fn the_lag_counts_from_the_last_moment_the_accounts_were_current() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut clock = LagClock::new(start);
        // Before the first refresh is done: since the start.
        assert_eq!(
            clock.observe(&status(SyncPhase::Refreshing, 1, false), at(5)),
            Duration::from_secs(5)
        );
        // Following a persistent search: none.
        assert_eq!(
            clock.observe(&status(SyncPhase::Live, 1, true), at(7)),
            Duration::ZERO
        );
        assert_eq!(
            clock.observe(&status(SyncPhase::Live, 1, true), at(60)),
            Duration::ZERO
        );
        // The directory went away at 60: the lag grows while reconnecting and refreshing.
        assert_eq!(
            clock.observe(&status(SyncPhase::Connecting, 1, true), at(70)),
            Duration::from_secs(10)
        );
        assert_eq!(
            clock.observe(&status(SyncPhase::Refreshing, 2, false), at(80)),
            Duration::from_secs(20)
        );
        // Polling: a refresh seen done only once waiting counts once, at the first sight.
        assert_eq!(
            clock.observe(&status(SyncPhase::Waiting, 2, true), at(85)),
            Duration::ZERO
        );
        assert_eq!(
            clock.observe(&status(SyncPhase::Waiting, 2, true), at(95)),
            Duration::from_secs(10)
        );
        assert_eq!(
            clock.observe(&status(SyncPhase::Stopped, 2, true), at(100)),
            Duration::from_secs(15)
        );
    }
}
