//! Real PyPI packages for the acceptance tests, installed with pip under the cargo target dir
//! once; a registry that cannot be reached fails the tests rather than skipping them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A package pinned to one version, and the files that show it installed.
pub struct Package {
    /// `name==version`, as pip takes it.
    pub spec: &'static str,
    /// The directory under the target dir it goes into.
    pub dir: &'static str,
    /// The `*.dist-info` directory pip makes.
    pub dist_info: &'static str,
    /// A module file of the package, relative to the install directory.
    pub module: &'static str,
}

/// Installs `p` (with its dependencies) unless already there, for `PYTHONPATH`. Each test process
/// installs into a directory of its own and renames it into place, so concurrent test processes
/// never see half an install.
pub fn install(p: &Package) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(p.dir);
    if dir.join(p.dist_info).is_dir() {
        return dir;
    }
    let partial = root.join(format!("{}.partial-{}", p.dir, std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let out = Command::new("python3")
        // Debian's python3 is "externally managed"; installing into a directory of our own is
        // what that rule allows (older pips ignore the variable).
        .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
        .args(["-m", "pip", "install", "--quiet", "--no-input"])
        .args(["--disable-pip-version-check", "--target"])
        .arg(&partial)
        .arg(p.spec)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `python3 -m pip` to install {}: {e}", p.spec));
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    assert!(
        out.status.success(),
        "`python3 -m pip install --target {} {}` failed ({}): the test needs the real package \
         from PyPI, so the registry must be reachable.\n{}{}",
        partial.display(),
        p.spec,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        partial.join(p.dist_info).is_dir() && partial.join(p.module).is_file(),
        "pip reported success but {} holds no {}",
        partial.display(),
        p.spec
    );
    if let Err(e) = std::fs::rename(&partial, &dir) {
        // Another test process got there first; its install is as good as ours.
        let _ = std::fs::remove_dir_all(&partial);
        assert!(
            dir.join(p.dist_info).is_dir(),
            "cannot move the {} install into {}: {e}",
            p.spec,
            dir.display()
        );
    }
    dir
}
