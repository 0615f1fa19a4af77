//! Finding the programs of the real-peer matrix's backends (uWSGI, Go, spawn-fcgi and Perl's
//! FCGI, php-cgi), installing their Debian packages when they are missing and we are root, as
//! [`crate::php_fpm`] and [`crate::fcgiwrap`] do for theirs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{apt, process};

/// A program a backend needs: where to look, and which Debian packages provide it.
pub struct Program {
    /// Its file name (`uwsgi`, `go`, ...).
    pub name: &'static str,
    /// Environment variable naming the binary to use instead of searching.
    pub env: &'static str,
    /// Directories searched after `PATH`.
    pub dirs: &'static [&'static str],
    /// The Debian packages that provide it (and what it needs to serve the tests).
    pub packages: &'static [&'static str],
    /// A file that must exist too (a plugin, a Perl module), or `""`.
    pub needs: &'static str,
}

impl Program {
    /// The program's path, installing [`Program::packages`] when it (or [`Program::needs`]) is
    /// missing and we are root with apt-get.
    pub fn find_or_install(&self) -> Result<PathBuf> {
        if let Some(binary) = self.find()? {
            if self.needs.is_empty() || Path::new(self.needs).exists() {
                return Ok(binary);
            }
        }
        let list = self.packages.join(" ");
        if !apt::can_install() {
            bail!(
                "{} (or {}) not found. The tests need it: install it (Debian/Ubuntu: `sudo apt-get install {list}`), \
                 or point ${} at the binary, or run as root (with apt-get) to let xtask install it",
                self.name,
                self.needs,
                self.env
            );
        }
        apt::install(self.packages, &format!("{} not found", self.name))?;
        let binary = self
            .find()?
            .with_context(|| format!("{} still not found after `apt-get install {list}`", self.name))?;
        if !self.needs.is_empty() && !Path::new(self.needs).exists() {
            bail!("{} is still missing after `apt-get install {list}`", self.needs);
        }
        Ok(binary)
    }

    fn find(&self) -> Result<Option<PathBuf>> {
        if let Some(path) = process::program_from_env(self.env)? {
            return Ok(Some(path));
        }
        if let Some(path) = process::find_program(self.name) {
            return Ok(Some(path));
        }
        Ok(self
            .dirs
            .iter()
            .map(|dir| Path::new(dir).join(self.name))
            .find(|path| process::is_executable(path)))
    }
}
