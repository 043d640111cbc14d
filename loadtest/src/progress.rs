//! A live progress bar on stderr (only when stderr is a terminal): elapsed time, requests,
//! current rate and errors, redrawn twice a second.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Live;

pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
}

pub fn start(live: Arc<Live>, duration: Duration, label: String) -> Progress {
    let stop = Arc::new(tokio::sync::Notify::new());
    if !std::io::stderr().is_terminal() {
        return Progress { task: None, stop };
    }
    let notified = stop.clone();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let (mut last_done, mut last_at) = (0u64, start);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = notified.notified() => break,
            }
            let done = live.done.load(Ordering::Relaxed);
            let rate = (done - last_done) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
            (last_done, last_at) = (done, Instant::now());
            let frac = (start.elapsed().as_secs_f64() / duration.as_secs_f64().max(1e-3)).min(1.0);
            let filled = (frac * 30.0) as usize;
            eprint!(
                "\r{label} [{}{}] {:>5.1}s {:>10} req {:>9.0} req/s {:>6} errors",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                start.elapsed().as_secs_f64(),
                done,
                rate,
                live.errors.load(Ordering::Relaxed)
            );
            let _ = std::io::stderr().flush();
        }
        eprintln!();
    });
    Progress {
        task: Some(task),
        stop,
    }
}

impl Progress {
    pub async fn finish(self) {
        if let Some(task) = self.task {
            self.stop.notify_one();
            let _ = task.await;
        }
    }
}
