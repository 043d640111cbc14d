//! Wakes open-loop connections at their due times, to the microsecond. Tokio's timer has
//! millisecond granularity, and the open loop charges any lateness in sending to the server.
//! Spinning through the last millisecond would keep a core busy, and on a small machine that core
//! is shared with the system under test (PostgreSQL floats): the generator would steal the CPU it
//! measures. A thread sleeping on a condition variable pays a cross-thread wake-up (≈ 150 µs on
//! this VM) and the timer slack. So one task per run keeps the due times in a heap and arms a
//! timerfd (no slack) for the earliest; it fires through the runtime's own epoll, on the worker
//! that then runs the woken connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// How early a send may be released to share a timer expiry with its neighbours.
pub const EARLY: Duration = Duration::from_micros(100);

struct Waiter {
    due: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    waiters: BinaryHeap<Reverse<Waiter>>,
    seq: u64,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// A new earliest due time was pushed.
    earlier: Notify,
}

/// Handle the connections wait on; the driving task ends when the pacer is dropped.
pub struct Pacer {
    shared: Arc<Shared>,
    driver: JoinHandle<()>,
}

impl Pacer {
    /// Spawns the driving task on the current runtime.
    pub fn start() -> std::io::Result<Pacer> {
        let shared = Arc::new(Shared::default());
        let timer = timer::Timer::new()?;
        let driver = tokio::spawn(drive(shared.clone(), timer));
        Ok(Pacer { shared, driver })
    }

    /// Returns at `due`, or up to [`EARLY`] before it (at once if it has passed).
    pub async fn wait_until(&self, due: Instant) {
        if due <= Instant::now() + EARLY {
            return;
        }
        let (wake, woken) = oneshot::channel();
        let earliest = {
            let mut q = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            q.seq += 1;
            let seq = q.seq;
            q.waiters.push(Reverse(Waiter { due, seq, wake }));
            q.waiters.peek().is_some_and(|Reverse(w)| w.seq == seq)
        };
        if earliest {
            self.shared.earlier.notify_one();
        }
        // An error means the pacer is gone (the run is over): nothing left to wait for.
        let _ = woken.await;
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Wakes every waiter due before `now + EARLY` and returns the next due time. Arming a timerfd is
/// a VM exit here (`perf`: 12.6 % of the generator's CPU at 57 000 req/s when each send re-armed
/// it); waking the sends due in the next 100 µs together fires it a fraction as often. A send
/// that goes early is timed from when it went, not from its due time (see `engine`).
fn wake_due(shared: &Shared) -> Option<Instant> {
    let horizon = Instant::now() + EARLY;
    let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
    while let Some(Reverse(next)) = q.waiters.peek() {
        if next.due > horizon {
            return Some(next.due);
        }
        if let Some(Reverse(w)) = q.waiters.pop() {
            let _ = w.wake.send(());
        }
    }
    None
}

async fn drive(shared: Arc<Shared>, mut timer: timer::Timer) {
    loop {
        match wake_due(&shared) {
            // `notify_one` keeps a permit, so a push that came after `wake_due` is not missed.
            None => shared.earlier.notified().await,
            Some(next) => {
                tokio::select! {
                    _ = timer.fire_at(next) => {}
                    _ = shared.earlier.notified() => {}
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod timer {
    use std::os::fd::OwnedFd;
    use std::time::Instant;

    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub struct Timer(AsyncFd<OwnedFd>);

    impl Timer {
        pub fn new() -> std::io::Result<Timer> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            // SAFETY: the `OwnedFd` moves into the `AsyncFd` and is only closed when it drops,
            // so the registered descriptor stays open and the same for its whole life.
            let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
            registered.map(Timer).map_err(|e| e.into_parts().1)
        }

        /// Resolves at `at` (re-arming the timer: the previous time is forgotten).
        pub async fn fire_at(&mut self, at: Instant) {
            // Relative, since `Instant` does not expose its clock reading; a zero value would
            // disarm the timer instead of firing it.
            let after = at.saturating_duration_since(Instant::now());
            let value = Timespec {
                tv_sec: after.as_secs() as i64,
                tv_nsec: i64::from(after.subsec_nanos().max(1)),
            };
            let spec = Itimerspec {
                it_interval: Timespec::default(),
                it_value: value,
            };
            if timerfd_settime(self.0.get_ref(), TimerfdTimerFlags::empty(), &spec).is_err() {
                tokio::time::sleep_until(at.into()).await;
                return;
            }
            loop {
                let Ok(mut ready) = self.0.readable_mut().await else {
                    tokio::time::sleep_until(at.into()).await;
                    return;
                };
                let mut expirations = [0u8; 8];
                let fired = rustix::io::read(ready.get_inner(), &mut expirations).is_ok();
                ready.clear_ready();
                if fired {
                    return;
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod timer {
    use std::time::Instant;

    /// Elsewhere, tokio's millisecond timer.
    pub struct Timer;

    impl Timer {
        pub fn new() -> std::io::Result<Timer> {
            Ok(Timer)
        }

        pub async fn fire_at(&mut self, at: Instant) {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Single-threaded, so the woken tasks run in the order the pacer woke them, and a test
    // machine stalled past some due times still sees them woken in due order.
    #[tokio::test]
    async fn waiters_wake_in_due_order_and_not_before_their_time() {
        let pacer = Arc::new(Pacer::start().unwrap());
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Pushed out of order, some further than the spin window, some within it.
        for ms in [30u64, 5, 20, 0, 12, 3] {
            let pacer = pacer.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let due = start + Duration::from_millis(ms);
                pacer.wait_until(due).await;
                let _ = tx.send((ms, Instant::now().saturating_duration_since(due)));
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some((ms, late)) = rx.recv().await {
            order.push(ms);
            // Never earlier than the shared-expiry allowance.
            assert!(start.elapsed() + EARLY >= Duration::from_millis(ms));
            assert!(late < Duration::from_secs(1), "{late:?} late");
        }
        assert_eq!(order, vec![0, 3, 5, 12, 20, 30]);
    }
}
