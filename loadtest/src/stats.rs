//! What a run measured: one latency histogram per step (microseconds), errors by kind, and the
//! open-loop schedule whose intended send times latencies are measured from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies from 1 µs to 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Why a request did not count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A non-2xx status (the code is kept in the key).
    Status(u16),
    Timeout,
    /// Connection refused, reset, malformed HTTP.
    Connect,
    Protocol,
    /// An answer whose signature did not verify (KeyAuth scenarios).
    Signature,
    /// A well-formed answer that says the step failed (e.g. `"success":false`).
    Refused,
}

impl ErrorKind {
    pub fn label(self) -> String {
        match self {
            ErrorKind::Status(s) => format!("status_{s}"),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::Signature => "signature".into(),
            ErrorKind::Refused => "refused".into(),
        }
    }
}

/// Statistics of one connection, merged into the run's at the end.
#[derive(Clone, Default)]
pub struct Stats {
    pub steps: BTreeMap<&'static str, Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
    /// Answers whose signature was verified (KeyAuth scenarios; see `verify_every`).
    pub verified: u64,
    /// One entry per second of the run, by (intended) send time: a tail that comes from a few
    /// bad seconds (a checkpoint, a flush, a stall) looks different from one spread evenly.
    /// Filled from the run's [`Timeline`] when it ends (connections hand their seconds there,
    /// so `merge` has nothing of it to add).
    pub timeline: Vec<Second>,
    clock: Option<Clock>,
}

/// One second of a run.
#[derive(Clone)]
pub struct Second {
    /// Coarse (1 significant digit, u32 counts: ≈ 1.5 KB): resolution enough to see a bad second.
    pub latency: Histogram<u32>,
    pub errors: u64,
}

impl Default for Second {
    fn default() -> Second {
        Second {
            latency: Histogram::new_with_bounds(1, 60_000_000, 1)
                .expect("constant bounds are valid"),
            errors: 0,
        }
    }
}

impl Second {
    fn merge(&mut self, other: &Second) {
        let _ = self.latency.add(&other.latency);
        self.errors += other.errors;
    }
}

/// A run's seconds, shared by its connections. Each connection fills the second it is in and
/// hands it over when it moves on, so memory grows with the run's length, not with connections
/// × length (a thousand connections for ten minutes would otherwise hold ≈ 900 MB).
#[derive(Default)]
pub struct Timeline(Mutex<Vec<Second>>);

impl Timeline {
    fn add(&self, i: usize, second: &Second) {
        // Poisoned only if a connection panicked mid-merge; its numbers are lost either way.
        let Ok(mut seconds) = self.0.lock() else {
            return;
        };
        if seconds.len() <= i {
            seconds.resize_with(i + 1, Second::default);
        }
        seconds[i].merge(second);
    }

    pub fn seconds(&self) -> Vec<Second> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Clock {
    origin: Instant,
    sink: Arc<Timeline>,
    current: Option<(usize, Second)>,
}

impl Stats {
    /// Starts the timeline: later samples are placed by their distance from `origin`.
    pub fn start_clock(&mut self, origin: Instant, sink: Arc<Timeline>) {
        self.clock = Some(Clock {
            origin,
            sink,
            current: None,
        });
    }

    /// Hands the second in progress to the run's timeline (a connection's end).
    pub fn stop_clock(&mut self) {
        if let Some(Clock {
            sink,
            current: Some((i, second)),
            ..
        }) = self.clock.take()
        {
            sink.add(i, &second);
        }
    }

    fn second(&mut self, at: Instant) -> Option<&mut Second> {
        let clock = self.clock.as_mut()?;
        let i = at.checked_duration_since(clock.origin)?.as_secs() as usize;
        if clock.current.as_ref().map(|(j, _)| *j) != Some(i) {
            if let Some((j, done)) = clock.current.take() {
                clock.sink.add(j, &done);
            }
            clock.current = Some((i, Second::default()));
        }
        clock.current.as_mut().map(|(_, second)| second)
    }

    /// A completed request of `step`, sent (or due) at `sent`.
    pub fn record(&mut self, step: &'static str, sent: Instant, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let _ = self.steps.entry(step).or_insert_with(histogram).record(us);
        if let Some(second) = self.second(sent) {
            let _ = second.latency.record(us);
        }
    }

    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind.label()).or_default() += 1;
        if let Some(second) = self.second(Instant::now()) {
            second.errors += 1;
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for (step, h) in &other.steps {
            let _ = self.steps.entry(step).or_insert_with(histogram).add(h);
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.verified += other.verified;
    }

    /// All steps together.
    pub fn total(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in self.steps.values() {
            let _ = all.add(h);
        }
        all
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The open-loop schedule of one connection: request `i` is due at `start + offset + i × interval`
/// whether or not earlier ones were answered. Latency is measured from that due time, so a stalled
/// server is charged for every request it delayed (no coordinated omission).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub offset: Duration,
    pub interval: Duration,
}

impl Schedule {
    /// `rate` requests per second in total, spread evenly over `connections`; connection `index`
    /// is shifted so the connections do not send in lockstep.
    pub fn new(start: Instant, rate: f64, connections: usize, index: usize) -> Schedule {
        let c = connections.max(1) as f64;
        let interval = Duration::from_secs_f64(c / rate.max(1e-6));
        Schedule {
            start,
            offset: interval.mul_f64(index as f64 / c),
            interval,
        }
    }

    pub fn due(&self, i: u64) -> Instant {
        self.start + self.offset + self.interval.mul_f64(i as f64)
    }
}

/// The median (the mean of the middle two for an even count; 0 for none). Sorts `v`.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The latencies an open-loop client records against a server with the given service times,
/// one connection, sending each request at its due time or as soon as the previous is answered.
pub fn open_loop_latencies(interval: Duration, service: &[Duration]) -> Vec<Duration> {
    let mut free_at = Duration::ZERO;
    service
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let due = interval.mul_f64(i as f64);
            let sent = due.max(free_at);
            free_at = sent + *s;
            free_at - due
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_stall_is_charged_to_every_request_it_delayed() {
        // 10 ms between requests, 1 ms service, one 1 s stall at request 10.
        let mut service = vec![MS; 200];
        service[10] = Duration::from_secs(1);
        let open = open_loop_latencies(10 * MS, &service);
        // Closed loop would see one slow sample; open loop sees the whole backlog.
        let slow = open.iter().filter(|l| **l > 50 * MS).count();
        assert!(slow >= 90, "{slow} slow samples");
        assert_eq!(open[10], Duration::from_secs(1));
        // Request 11 was due 10 ms after the stalled one and waited for it.
        assert_eq!(open[11], Duration::from_secs(1) - 10 * MS + MS);
        // The backlog drains at 9 ms per request; afterwards latency is the service time again.
        assert_eq!(open[199], MS);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn schedule_spreads_connections_and_keeps_the_rate() {
        let start = Instant::now();
        let s0 = Schedule::new(start, 1000.0, 4, 0);
        let s1 = Schedule::new(start, 1000.0, 4, 1);
        assert_eq!(s0.interval, 4 * MS);
        assert_eq!(s1.due(0) - start, MS);
        assert_eq!(s0.due(250) - start, Duration::from_secs(1));
    }

    #[test]
    fn merged_stats_keep_every_sample_and_error() {
        let t0 = Instant::now();
        let sink = Arc::new(Timeline::default());
        let mut a = Stats::default();
        a.start_clock(t0, sink.clone());
        a.record("check", t0, 2 * MS);
        a.error(ErrorKind::Status(503));
        let mut b = Stats::default();
        b.start_clock(t0, sink.clone());
        b.record("check", t0 + 2500 * MS, 4 * MS);
        b.record("init", t0 + 10 * MS, MS);
        b.error(ErrorKind::Status(503));
        b.error(ErrorKind::Signature);
        a.stop_clock();
        b.stop_clock();
        a.merge(&b);
        assert_eq!(a.steps["check"].len(), 2);
        assert_eq!(a.total().len(), 3);
        assert_eq!(a.errors["status_503"], 2);
        assert_eq!(a.errors["signature"], 1);
        assert_eq!(a.error_count(), 3);
        assert!(a.steps["check"].max() >= 3990);
        // By send time: two requests in second 0, none in 1, one in 2.
        let seconds = sink.seconds();
        let counts: Vec<u64> = seconds.iter().map(|s| s.latency.len()).collect();
        assert_eq!(counts, [2, 0, 1]);
        assert!(seconds[2].latency.max() >= 3900);
        assert_eq!(seconds.iter().map(|s| s.errors).sum::<u64>(), 3);
    }

    #[test]
    fn connections_hand_over_each_second_when_they_move_on() {
        let t0 = Instant::now();
        let sink = Arc::new(Timeline::default());
        let mut conns: Vec<Stats> = (0..100).map(|_| Stats::default()).collect();
        for c in &mut conns {
            c.start_clock(t0, sink.clone());
            c.record("check", t0 + 100 * MS, MS);
        }
        // Still in progress: nothing handed over yet.
        assert!(sink.seconds().is_empty());
        for c in &mut conns {
            c.record("check", t0 + 1100 * MS, 2 * MS);
        }
        // Second 0 is complete in the shared timeline; each connection holds only second 1.
        let seconds = sink.seconds();
        assert_eq!(seconds.len(), 1);
        assert_eq!(seconds[0].latency.len(), 100);
        for c in &mut conns {
            c.stop_clock();
        }
        assert_eq!(sink.seconds()[1].latency.len(), 100);
    }

    #[test]
    fn samples_outside_the_clock_stay_out_of_the_timeline() {
        let t0 = Instant::now();
        let sink = Arc::new(Timeline::default());
        let mut s = Stats::default();
        s.record("check", t0, MS);
        s.start_clock(t0 + Duration::from_secs(1), sink.clone());
        s.record("check", t0, MS);
        s.stop_clock();
        assert!(sink.seconds().is_empty());
        assert_eq!(s.total().len(), 2);
    }
}
