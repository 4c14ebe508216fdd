//! Headless Chromium for the tests that drive pages in a real browser: Chromium and its
//! matching chromedriver from Debian (`apt-get`, as root, when `/usr/bin/chromium` is
//! missing), and Selenium into a virtual environment under the target directory.

use crate::venv;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The Selenium release the browser tests were written against; it drives Debian's
/// chromedriver, which always matches Debian's Chromium.
const SELENIUM_VERSION: &str = "4.51.0";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium and chromedriver from Debian, unless both are there already.
pub fn install() {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            // With the recommended packages: they bring the fonts the screenshots show.
            .args(["install", "-y", "-qq"])
            .args(["chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run apt-get (this test installs Chromium as root)")
    };
    let mut installed = install();
    if !installed.status.success() {
        // A fresh machine may not have the package lists yet.
        let updated = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .expect("run apt-get update");
        assert!(updated.success(), "apt-get update failed");
        installed = install();
    }
    assert!(
        installed.status.success(),
        "apt-get install chromium chromium-driver failed:\n{}",
        String::from_utf8_lossy(&installed.stderr)
    );
}

/// The Python of the virtual environment `name` with Selenium and `more` (pip requirements).
pub fn selenium_python(name: &str, more: &[&str], more_probe: &str) -> PathBuf {
    let requirement = format!("selenium=={SELENIUM_VERSION}");
    let probe = format!(
        "import selenium; assert selenium.__version__ == {SELENIUM_VERSION:?}; {more_probe}"
    );
    let packages: Vec<&str> = std::iter::once(requirement.as_str())
        .chain(more.iter().copied())
        .collect();
    venv::python(name, &packages, &probe)
}

/// Runs a Selenium script (`command`: the venv's Python, the script and its arguments) with
/// temporary files in `tmp`; fails the test, with the script's output and `server_log()`,
/// unless it succeeds and prints `passed`.
pub fn drive(mut command: Command, tmp: &Path, passed: &str, server_log: impl FnOnce() -> String) {
    let output = command
        .env("TMPDIR", tmp)
        // Selenium Manager would look for a browser online; the paths are given instead.
        .env("SE_OFFLINE", "true")
        .output()
        .expect("run the Selenium script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the page failed in Chromium:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server_log()
    );
    assert!(stdout.contains(passed), "{stdout}");
}
