//! Python tools for the tests that drive the server with real clients: a virtual environment
//! under the target directory per tool set, created and filled with pip the first time.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

/// The Python of the virtual environment `name` with `packages` (pip requirements) installed.
/// `probe` is Python code that succeeds once they are there (an import, a version check);
/// while it fails the environment is made and the packages installed. One test of a binary
/// at a time installs, as the tests of a binary run in parallel.
pub fn python(name: &str, packages: &[&str], probe: &str) -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _installing = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin").join("python");
    let ready = Command::new(&python).args(["-c", probe]).output();
    if ready.is_ok_and(|output| output.status.success()) {
        return python;
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("run python3 (this test needs Python 3 with venv)");
    assert!(
        created.success(),
        "python3 -m venv {} failed",
        venv.display()
    );
    let installed = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .status()
        .expect("run pip");
    assert!(installed.success(), "pip install {packages:?} failed");
    python
}
