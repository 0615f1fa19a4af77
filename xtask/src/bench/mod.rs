//! `cargo xtask bench [SECTION...]`: the benchmark runner. One section per area, selected by
//! name (default: all); results go to `docs/BENCHMARKS.md`.
//!
//! Adding a section: write `bench/<name>.rs` with `pub fn run(ctx: &mut Ctx) -> Result<Report>`
//! and list it in [`SECTIONS`]. A section measures our code *and* its peer side by side in the same
//! run (brief, section 7), and returns a title, the exact command reproducing it, and a markdown
//! table. Sections needing php-fpm call [`Ctx::backends`], which starts the shared test backends
//! once (see [`crate::backends`]).
//!
//! Sections not run this time keep their previous text in the file; see [`report`] for the format.

mod codec;
mod mux;
mod report;

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::backends::Backends;
use crate::process::{self, Interrupted};

pub use report::Report;

/// One benchmark area.
pub struct Section {
    /// Name used on the command line and in the file's markers.
    pub name: &'static str,
    /// One line for `cargo xtask bench --list`.
    pub about: &'static str,
    /// Runs the measurements.
    pub run: fn(&mut Ctx) -> Result<Report>,
}

/// All sections, in the order they appear in docs/BENCHMARKS.md.
pub const SECTIONS: &[Section] = &[
    Section { name: "codec", about: "fcgi-proto encode/decode throughput", run: codec::run },
    Section {
        name: "mux",
        about: "fcgi-mux vs fastcgi-client on php-fpm, multiplexing, 1 GiB stream RSS",
        run: mux::run,
    },
];

/// Shared state for sections: backends are started on first use and stopped after the run.
#[derive(Default)]
pub struct Ctx {
    backends: Option<Backends>,
}

impl Ctx {
    /// The test backends (php-fpm ...), started on first call.
    pub fn backends(&mut self) -> Result<&mut Backends> {
        if self.backends.is_none() {
            self.backends = Some(Backends::start()?);
        }
        match self.backends.as_mut() {
            Some(backends) => Ok(backends),
            None => bail!("backends vanished after starting"),
        }
    }
}

/// Runs the `selected` sections (all if empty), updates docs/BENCHMARKS.md with those that
/// succeeded, and fails if any section failed.
pub fn run(selected: &[String], list: bool) -> Result<ExitCode> {
    if list {
        for section in SECTIONS {
            println!("{:<12} {}", section.name, section.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let sections = select(selected)?;
    let mut ctx = Ctx::default();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for section in sections {
        println!("xtask: bench {} ...", section.name);
        match (section.run)(&mut ctx) {
            Ok(report) => done.push((section.name, report)),
            Err(err) if err.is::<Interrupted>() => return Err(err),
            Err(err) => {
                eprintln!("xtask: bench {} failed: {err:#}", section.name);
                failed.push(section.name);
            }
        }
        process::bail_if_interrupted()?;
    }
    drop(ctx);
    if !done.is_empty() {
        let path = report::write(&done)?;
        println!("xtask: wrote {} ({} section(s))", path.display(), done.len());
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("bench section(s) failed: {}", failed.join(", "))
    }
}

/// The sections named in `selected`, in [`SECTIONS`] order; all of them when empty.
fn select(selected: &[String]) -> Result<Vec<&'static Section>> {
    for name in selected {
        if !SECTIONS.iter().any(|s| s.name == name) {
            let known: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
            bail!("unknown bench section {name:?}; sections: {}", known.join(", "));
        }
    }
    Ok(SECTIONS.iter().filter(|s| selected.is_empty() || selected.iter().any(|n| n == s.name)).collect())
}
