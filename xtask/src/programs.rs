//! Finding the programs the backends and the tests need, installing their Debian packages when
//! they are missing and we are root with apt-get ([`crate::apt`]); otherwise failing with what to
//! install. A program is looked for in `$XTASK_<NAME>` when set, then `PATH`, then [`DIRS`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{apt, process};

/// Directories searched after `PATH`: the sbin ones a user's `PATH` may lack, and Go's.
const DIRS: &str =
    "/usr/sbin:/usr/local/sbin:/sbin:/usr/bin:/usr/local/bin:/usr/lib/go/bin:/usr/local/go/bin";

/// Whether what a program needs beside its binary is there (given the binary).
type Present = fn(&Path) -> bool;

/// A program: its file name, the variable naming a binary to use instead of searching, the
/// Debian packages providing it and what it needs to serve the tests, and what it needs beside
/// the binary (a plugin, a module) with whether that is there.
pub struct Program {
    name: &'static str,
    env: &'static str,
    packages: &'static [&'static str],
    needs: Option<(&'static str, Present)>,
}

impl Program {
    /// A program that needs nothing beside its binary.
    pub const fn new(name: &'static str, env: &'static str, packages: &'static [&'static str]) -> Program {
        Program { name, env, packages, needs: None }
    }

    /// This program, found only when `present` says `what` is there as well.
    pub const fn needing(self, what: &'static str, present: Present) -> Program {
        Program { needs: Some((what, present)), ..self }
    }

    /// The program's path, installing its packages when it (or what it needs) is missing.
    pub fn find_or_install(&self) -> Result<PathBuf> {
        let what =
            self.needs.map_or(self.name.to_owned(), |(needs, _)| format!("{} (with {needs})", self.name));
        find_or_install(&what, self.env, self.packages, || self.find())
    }

    fn find(&self) -> Result<Option<PathBuf>> {
        let in_dirs = || {
            std::env::split_paths(DIRS)
                .map(|dir| dir.join(self.name))
                .find(|path| process::is_executable(path))
        };
        let found = process::program_from_env(self.env)?
            .or_else(|| process::find_program(self.name))
            .or_else(in_dirs);
        Ok(found.filter(|binary| self.needs.is_none_or(|(_, present)| present(binary))))
    }
}

/// What `find` finds, installing `packages` first when it finds nothing and we may.
pub fn find_or_install(
    what: &str,
    env: &str,
    packages: &[&str],
    find: impl Fn() -> Result<Option<PathBuf>>,
) -> Result<PathBuf> {
    if let Some(binary) = find()? {
        return Ok(binary);
    }
    let list = packages.join(" ");
    if !apt::can_install() {
        bail!(
            "{what} not found. The tests need it: install it (Debian/Ubuntu: `sudo apt-get install {list}`), \
             or point ${env} at the binary, or run as root (with apt-get) to let xtask install it"
        );
    }
    apt::install(packages, &format!("{what} not found"))?;
    find()?.with_context(|| format!("{what} still not found after `apt-get install {list}`"))
}
