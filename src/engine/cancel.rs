//! Cancellation of a run: the binary turns SIGINT and SIGTERM into [`Trigger::signal`]; the
//! engine reads the level from its [`Cancel`] between steps.
//!
//! Two levels, as GitHub Actions cancels a job (SIGINT, then SIGTERM 7.5 s later, then
//! SIGKILL 2.5 s after that): the first signal stops new work and lets the engine undo what is
//! in flight within [`UNDO_BOUND`]; the second abandons the undo at once, so only the record
//! (`interrupted`) and the lock release remain. A `tokio::sync::watch` channel carries the
//! level: cheap to clone, readable without waiting, and awaitable.

use std::time::Duration;

use tokio::sync::watch;

/// How long the undo of a cancelled release may take before it is abandoned (the record then
/// says `interrupted`, and `deployer status` shows what runs where).
pub const UNDO_BOUND: Duration = Duration::from_mins(1);

/// The receiving side: how far the run has been asked to stop.
#[derive(Debug, Clone)]
pub struct Cancel(watch::Receiver<u8>);

/// The sending side, held by whoever listens for signals.
#[derive(Debug)]
pub struct Trigger(watch::Sender<u8>);

impl Default for Cancel {
    /// Never cancelled (library callers and tests that do not cancel).
    fn default() -> Self {
        let (tx, rx) = watch::channel(0);
        // The receiver keeps the last value after the sender is gone; `changed()` then errors,
        // which the waits below treat as "never".
        drop(tx);
        Self(rx)
    }
}

impl Cancel {
    /// A cancellation that [`Trigger::signal`] drives.
    pub fn new() -> (Trigger, Self) {
        let (tx, rx) = watch::channel(0);
        (Trigger(tx), Self(rx))
    }

    /// A stop was asked for: start no new work.
    pub fn requested(&self) -> bool {
        *self.0.borrow() >= 1
    }

    /// A second stop was asked for: abandon the undo too.
    pub fn aborted(&self) -> bool {
        *self.0.borrow() >= 2
    }

    async fn reaches(&self, level: u8) {
        let mut rx = self.0.clone();
        if rx.wait_for(|l| *l >= level).await.is_err() {
            // The trigger is gone without reaching the level: it never will.
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once a stop is asked for (never, for [`Cancel::default`]).
    pub async fn stopped(&self) {
        self.reaches(1).await;
    }

    /// Resolves once a second stop is asked for.
    pub async fn abort(&self) {
        self.reaches(2).await;
    }
}

impl Trigger {
    /// One more signal: the first asks to stop, the second to abort.
    pub fn signal(&self) {
        self.0.send_modify(|l| *l = l.saturating_add(1));
    }

    /// How many signals arrived.
    pub fn count(&self) -> u8 {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_stops_the_second_aborts() {
        let (trigger, cancel) = Cancel::new();
        assert!(!cancel.requested());
        trigger.signal();
        cancel.stopped().await;
        assert!(cancel.requested() && !cancel.aborted());
        trigger.signal();
        cancel.abort().await;
        assert!(cancel.aborted());
        assert_eq!(trigger.count(), 2);
        assert!(!Cancel::default().requested());
    }
}
