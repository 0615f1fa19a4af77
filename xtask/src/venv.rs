//! The Python virtual environment for Python test backends (flup from PyPI), kept in
//! `<repo>/target/xtask-venv` and reused from run to run.
//!
//! [`ensure`] returns a venv holding exactly [`PACKAGES`] (pinned versions), creating it when
//! missing, broken (e.g. its base interpreter is gone) or made for another package list:
//!
//! 1. the base interpreter is `$XTASK_PYTHON` if set, else `python3` in `PATH`, else
//!    `/usr/bin/python3`; if there is none and we are root with apt-get, Debian's `python3` and
//!    `python3-venv` are installed;
//! 2. `python -m venv` builds a fresh venv in a temp dir beside the final one (on Debian this fails
//!    without `python3-venv`, which is then installed when root, and the step retried);
//! 3. `python -m pip install` the pinned [`PACKAGES`] from the package index pip is configured for;
//! 4. a marker file listing the packages is written, and the temp dir is renamed into place.
//!
//! Building aside and renaming makes the switch atomic: an interrupted install leaves no half
//! venv behind, and two xtask runs racing to create it both end up using a complete one.
//! A venv is relocatable enough for this: its `bin/python` finds `pyvenv.cfg` next to itself and
//! xtask only ever runs `bin/python` (pip as `python -m pip`), never the scripts whose `#!` lines
//! name the temp path.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{apt, process, workspace};

/// The PyPI packages the venv holds, pinned to the versions whose behaviour the tests were written against.
pub const PACKAGES: &[&str] = &["flup==1.0.3"];

/// A Python statement that succeeds when the packages are importable.
const IMPORT_CHECK: &str = "import flup.server.fcgi";

/// Environment variable naming the base Python interpreter.
pub const PYTHON_ENV: &str = "XTASK_PYTHON";

/// File in the venv listing the installed [`PACKAGES`], one per line.
const MARKER: &str = "xtask-packages.txt";

/// A ready virtual environment.
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        python_in(&self.dir)
    }
}

/// Returns the venv in `<repo>/target/xtask-venv`, creating or refreshing it as needed.
pub fn ensure() -> Result<Venv> {
    let target = workspace::root().join("target");
    let dir = target.join("xtask-venv");
    if is_ready(&dir) {
        return Ok(Venv { dir });
    }
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    println!("xtask: preparing the Python venv {} with {} ...", dir.display(), PACKAGES.join(" "));
    let staging = tempfile::Builder::new()
        .prefix("xtask-venv.tmp-")
        .tempdir_in(&target)
        .with_context(|| format!("creating a temp dir in {}", target.display()))?;
    create(staging.path())?;
    let python = python_in(staging.path());
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"]).args(PACKAGES);
    process::run_ok(&format!("pip install {}", PACKAGES.join(" ")), &mut pip)
        .with_context(|| format!("installing {} from PyPI into the venv", PACKAGES.join(" ")))?;
    if !imports(&python) {
        bail!("`{IMPORT_CHECK}` fails in the new venv {} after pip install", staging.path().display());
    }
    fs::write(staging.path().join(MARKER), marker())
        .with_context(|| format!("writing {}", staging.path().join(MARKER).display()))?;

    // Replace whatever is there (an outdated or broken venv), unless a concurrent run just put a
    // good one in place.
    if is_ready(&dir) {
        return Ok(Venv { dir });
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing the outdated venv {}", dir.display()))?;
    }
    match fs::rename(staging.path(), &dir) {
        Ok(()) => {}
        Err(_) if is_ready(&dir) => {} // Another run won the race with an equally good venv.
        Err(err) => {
            return Err(err).with_context(|| {
                format!("moving the new venv {} to {}", staging.path().display(), dir.display())
            });
        }
    }
    println!("xtask: Python venv ready ({})", dir.display());
    Ok(Venv { dir })
}

/// Whether `dir` holds a venv with our packages (marker matches and they import).
fn is_ready(dir: &Path) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|text| text == marker()) && imports(&python_in(dir))
}

fn marker() -> String {
    PACKAGES.iter().map(|p| format!("{p}\n")).collect()
}

fn python_in(dir: &Path) -> PathBuf {
    dir.join("bin").join("python")
}

/// Whether `python` runs and can import the packages.
fn imports(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", IMPORT_CHECK])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `python -m venv dir`, installing Debian's python3-venv (and python3) when root and needed.
fn create(dir: &Path) -> Result<()> {
    let python = match base_python()? {
        Some(python) => python,
        None if apt::can_install() => {
            apt::install(&["python3", "python3-venv"], "python3 not found (needed for flup)")?;
            base_python()?.context("python3 still not found after `apt-get install python3`")?
        }
        None => bail!(
            "python3 not found (needed to run flup, a test backend): install Python 3 with its venv \
             module (Debian/Ubuntu: `sudo apt-get install python3-venv`) or set ${PYTHON_ENV}"
        ),
    };
    if try_create(&python, dir)? {
        return Ok(());
    }
    if !apt::can_install() {
        bail!(
            "`{} -m venv` failed (see above): install its venv module (Debian/Ubuntu: \
             `sudo apt-get install python3-venv`) or point ${PYTHON_ENV} at another Python 3",
            python.display()
        );
    }
    apt::install(&["python3-venv"], &format!("`{} -m venv` failed", python.display()))?;
    if !try_create(&python, dir)? {
        bail!("`{} -m venv {}` still fails after installing python3-venv", python.display(), dir.display());
    }
    Ok(())
}

/// One `python -m venv` attempt into the (emptied) `dir`; whether it worked.
fn try_create(python: &Path, dir: &Path) -> Result<bool> {
    // A failed attempt may leave files behind; venv wants an empty (or absent) directory.
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    let status = process::run(
        &format!("{} -m venv", python.display()),
        Command::new(python).arg("-m").arg("venv").arg(dir),
    )?;
    Ok(status.success() && process::is_executable(&python_in(dir)))
}

/// `$XTASK_PYTHON`, else `python3` in PATH, else `/usr/bin/python3`.
fn base_python() -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os(PYTHON_ENV) {
        let path = PathBuf::from(path);
        if !process::is_executable(&path) {
            bail!("${PYTHON_ENV} is {} which is not an executable file", path.display());
        }
        return Ok(Some(path));
    }
    let fallback = PathBuf::from("/usr/bin/python3");
    Ok(process::find_program("python3").or_else(|| process::is_executable(&fallback).then_some(fallback)))
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
