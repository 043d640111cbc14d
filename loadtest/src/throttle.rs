//! A CPU quota for the servers of an A/B comparison (a cgroup's CFS bandwidth, v2 `cpu.max` or
//! v1 `cpu.cfs_quota_us`). On loopback the kernel's TCP work is ≈ 85 % of a request's cost on
//! either side, so one generator core can drive one bare hyper core only to about its own ceiling
//! (wrk no better): every ratio against the bare baseline would be generator-bound. With both
//! servers held to the same fraction of a core, the generator has the headroom, and the
//! throughput ratio is the ratio of what a request costs each server.

use std::path::{Path, PathBuf};

/// Both servers' processes sit in one cgroup with a quota; dropped, it moves them back.
pub struct Throttle {
    dir: PathBuf,
    root: PathBuf,
    members: Vec<u32>,
    pub share: f64,
}

/// Period of the quota: short, so a closed loop sees the quota as a slower server rather than
/// as stalls of half the period.
const PERIOD_US: u64 = 10_000;

impl Throttle {
    /// A cgroup limited to `share` of one core; `None` where cgroups cannot be written (not
    /// root, no cpu controller), with the reason.
    pub fn new(share: f64) -> Result<Throttle, String> {
        let quota = ((share * PERIOD_US as f64) as u64).max(1000);
        let name = format!("keyward-bench-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        let (root, dir) = if v2.exists() {
            let root = PathBuf::from("/sys/fs/cgroup");
            // The cpu controller must be on for the root's children.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))
                .map_err(|e| format!("cpu.max: {e}"))?;
            (root, dir)
        } else {
            let root = PathBuf::from("/sys/fs/cgroup/cpu");
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())
                .map_err(|e| format!("cpu.cfs_period_us: {e}"))?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())
                .map_err(|e| format!("cpu.cfs_quota_us: {e}"))?;
            (root, dir)
        };
        Ok(Throttle {
            dir,
            root,
            members: Vec::new(),
            share: quota as f64 / PERIOD_US as f64,
        })
    }

    /// Moves a process (all its threads) under the quota.
    pub fn add(&mut self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())?;
        self.members.push(pid);
        Ok(())
    }

    /// Moves a process back out.
    pub fn remove(&mut self, pid: u32) {
        let _ = std::fs::write(self.root.join("cgroup.procs"), pid.to_string());
        self.members.retain(|p| *p != pid);
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        for pid in std::mem::take(&mut self.members) {
            let _ = std::fs::write(self.root.join("cgroup.procs"), pid.to_string());
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
