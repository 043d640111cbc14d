//! How busy the generator was: the CPU time of its threads over a run. A throughput measured
//! while the generator's cores were (nearly) saturated is the generator's figure, not the
//! server's; the report says which.

use std::time::Duration;

/// CPU time (user + system) the calling thread has used so far; `None` where unsupported.
pub fn thread_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// CPU time (user + system, all threads) a process has used so far, from `/proc/PID/stat` (clock
/// ticks: 10 ms grain); `None` where that cannot be read. The CPU a server spent over a run,
/// divided by the requests it answered, is what a request cost it, kernel work included.
pub fn process_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks_per_second() as f64,
    ))
}

fn clock_ticks_per_second() -> u64 {
    #[cfg(target_os = "linux")]
    {
        rustix::param::clock_ticks_per_second()
    }
    #[cfg(not(target_os = "linux"))]
    {
        100
    }
}

/// The generator's share of the CPU it had, above which its own ceiling — not the server — may
/// have set the throughput (B within 10 % of the generator's ceiling).
pub const BOUND_SHARE: f64 = 0.90;

/// What the generator's threads used during one run.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorUse {
    /// Threads (each at most one core).
    pub threads: usize,
    pub cpu: Duration,
    pub elapsed: Duration,
}

impl GeneratorUse {
    /// 0–1: CPU used over the CPU its threads could have used.
    pub fn share(&self) -> f64 {
        let available = self.elapsed.as_secs_f64() * self.threads as f64;
        (self.cpu.as_secs_f64() / available.max(1e-9)).min(1.0)
    }

    /// The rate the generator could have sustained at full use of its threads, given what each
    /// request cost it in this run (an estimate: per-request cost shifts a little with load).
    pub fn ceiling(&self, throughput: f64) -> f64 {
        throughput / self.share().max(1e-6)
    }

    /// The run's throughput was within 10 % of the generator's ceiling.
    pub fn bound(&self) -> bool {
        self.share() >= BOUND_SHARE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_ceiling_and_bound() {
        let g = GeneratorUse {
            threads: 2,
            cpu: Duration::from_secs(6),
            elapsed: Duration::from_secs(4),
        };
        assert!((g.share() - 0.75).abs() < 1e-9);
        assert!((g.ceiling(75_000.0) - 100_000.0).abs() < 1e-6);
        assert!(!g.bound());
        let busy = GeneratorUse {
            cpu: Duration::from_millis(7_300),
            ..g
        };
        assert!(busy.bound());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_time_counts_this_process() {
        let before = process_time(std::process::id()).unwrap();
        // Spin until the process's counters move by at least two ticks.
        let wall = std::time::Instant::now();
        let mut x = 0u64;
        while process_time(std::process::id()).unwrap() < before + Duration::from_millis(20)
            && wall.elapsed() < Duration::from_secs(20)
        {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_time(std::process::id()).unwrap() >= before + Duration::from_millis(20));
        assert_eq!(process_time(u32::MAX), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn thread_time_counts_this_threads_work_and_not_its_waits() {
        let before = thread_time().unwrap();
        let wall = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        assert!(thread_time().unwrap() - before < Duration::from_millis(10));
        // Spin until 20 ms of CPU are counted; one thread cannot use more than the wall time.
        let mut x = 0u64;
        let used = loop {
            x = std::hint::black_box(x.wrapping_add(1));
            let used = thread_time().unwrap() - before;
            if used >= Duration::from_millis(20) || wall.elapsed() > Duration::from_secs(20) {
                break used;
            }
        };
        assert!(used >= Duration::from_millis(20), "{used:?}");
        assert!(used <= wall.elapsed(), "{used:?} in {:?}", wall.elapsed());
    }
}
