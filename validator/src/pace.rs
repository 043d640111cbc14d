//! The pacing of a write-behind flush: its statements spread over part of the flush interval so
//! that cache misses sharing PostgreSQL do not queue behind them, until shutdown hurries it.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Pace {
    hurry: AtomicBool,
    hurried: Notify,
}

impl Pace {
    /// Ends the pacing (shutdown): pauses under way and to come return at once.
    pub fn hurry(&self) {
        self.hurry.store(true, Ordering::Release);
        self.hurried.notify_waiters();
    }

    /// Waits until `until`, or less when hurried.
    pub async fn pause_until(&self, until: tokio::time::Instant) {
        let hurried = self.hurried.notified();
        tokio::pin!(hurried);
        // Registered before the flag is read, so a `hurry` in between still wakes it.
        hurried.as_mut().enable();
        if !self.hurry.load(Ordering::Acquire) {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = hurried => {}
            }
        }
    }
}
