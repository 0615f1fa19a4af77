//! The Python virtual environment for Python test backends (flup from PyPI), kept in
//! `<repo>/target/xtask-venv` and reused from run to run.
//!
//! [`ensure`] returns a venv holding exactly [`PACKAGES`], creating it when missing, broken (its
//! base interpreter gone) or made for another package list: `python -m venv` and `pip install`
//! build it in a temp dir beside the final one, which is then renamed into place. So the switch is
//! atomic: an interrupted install leaves no half venv behind, and two xtask runs racing to create
//! it both end up using a complete one. A venv is relocatable enough for this: its `bin/python`
//! finds `pyvenv.cfg` next to itself and xtask only ever runs `bin/python` (pip as
//! `python -m pip`), never the scripts whose `#!` lines name the temp path.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use crate::programs::Program;
use crate::{process, workspace};

/// The PyPI packages the venv holds, pinned to the versions whose behaviour the tests were written against.
pub const PACKAGES: &[&str] = &["flup==1.0.3"];

/// A Python statement that succeeds when the packages are importable.
const IMPORT_CHECK: &str = "import flup.server.fcgi";

/// The base interpreter; Debian keeps `venv`'s `ensurepip` in the package `python3-venv`.
const PYTHON: Program = Program::new("python3", "XTASK_PYTHON", &["python3", "python3-venv"])
    .needing("its venv module", |python| runs(python, "import ensurepip, venv"));

/// File in the venv listing the installed [`PACKAGES`], one per line.
const MARKER: &str = "xtask-packages.txt";

/// The interpreter of the venv in `<repo>/target/xtask-venv`, creating or refreshing it as needed.
pub fn ensure() -> Result<PathBuf> {
    let target = workspace::root().join("target");
    let dir = target.join("xtask-venv");
    if is_ready(&dir) {
        return Ok(python_in(&dir));
    }
    let python = PYTHON.find_or_install()?;
    println!("xtask: preparing the Python venv {} with {} ...", dir.display(), PACKAGES.join(" "));
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    let staging = tempfile::Builder::new()
        .prefix("xtask-venv.tmp-")
        .tempdir_in(&target)
        .with_context(|| format!("creating a temp dir in {}", target.display()))?;
    build(&python, staging.path())?;
    // Replace whatever is there (an outdated or broken venv), unless a concurrent run just put a
    // good one in place.
    if !is_ready(&dir) {
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the outdated venv {}", dir.display()))?;
        }
        match fs::rename(staging.path(), &dir) {
            Ok(()) => println!("xtask: Python venv ready ({})", dir.display()),
            Err(_) if is_ready(&dir) => {} // Another run won the race with an equally good venv.
            Err(err) => {
                let moving = format!("moving the new venv {} to {}", staging.path().display(), dir.display());
                return Err(err).context(moving);
            }
        }
    }
    Ok(python_in(&dir))
}

/// Builds a venv with [`PACKAGES`] and its marker in `dir`.
fn build(python: &Path, dir: &Path) -> Result<()> {
    let mut venv = Command::new(python);
    venv.arg("-m").arg("venv").arg(dir);
    process::run_ok(&format!("{} -m venv", python.display()), &mut venv)?;
    let mut pip = Command::new(python_in(dir));
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"]).args(PACKAGES);
    process::run_ok(&format!("pip install {}", PACKAGES.join(" ")), &mut pip)
        .with_context(|| format!("installing {} from PyPI into the venv", PACKAGES.join(" ")))?;
    ensure!(runs(&python_in(dir), IMPORT_CHECK), "`{IMPORT_CHECK}` fails in the new venv {}", dir.display());
    fs::write(dir.join(MARKER), marker()).with_context(|| format!("writing {}", dir.join(MARKER).display()))
}

/// Whether `dir` holds a venv with our packages (marker matches and they import).
fn is_ready(dir: &Path) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|text| text == marker())
        && runs(&python_in(dir), IMPORT_CHECK)
}

fn marker() -> String {
    PACKAGES.iter().map(|p| format!("{p}\n")).collect()
}

fn python_in(dir: &Path) -> PathBuf {
    dir.join("bin").join("python")
}

/// Whether `python -c code` runs and succeeds.
fn runs(python: &Path, code: &str) -> bool {
    let mut check = Command::new(python);
    check.args(["-c", code]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    check.status().is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lists_pinned_packages() {
        assert_eq!(marker(), "flup==1.0.3\n");
        assert!(PACKAGES.iter().all(|p| p.contains("==")), "pin every package: {PACKAGES:?}");
    }

    #[test]
    fn an_empty_dir_is_not_a_ready_venv() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_ready(dir.path()));
    }
}
