//! `cargo xtask bench [SECTION...]`: the benchmark runner. One section per area, selected by
//! name (default: all); `--list` shows them. Each section measures our code *and* its peer side
//! by side in the same run and returns a [`Report`] (title, the command reproducing it, a table,
//! notes); [`report`] renders them into docs/BENCHMARKS.md, keeping the sections not run.
//!
//! Adding a section: write `bench/<name>.rs` with `pub fn run(ctx: &mut Ctx) -> Result<Report>`
//! and list it in [`SECTIONS`]. [`Ctx`] starts the shared test backends, the HTTP gateways and
//! builds the release CLI once, on first use; [`tools`] finds or installs outside programs;
//! [`measure`] holds the shared measuring helpers.

mod codec;
mod exporter;
mod gateways;
pub(crate) mod measure;
mod mux;
mod oneshot;
mod report;
mod serve;
mod tools;

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::backends::Backends;
use crate::process::{self, Interrupted};

pub use report::Report;

/// One benchmark area: its name (on the command line and in the file's markers), a line for
/// `--list`, and what measures it.
pub struct Section {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> Result<Report>,
}

/// All sections, in the order they appear in docs/BENCHMARKS.md.
pub const SECTIONS: &[Section] = &[
    Section { name: "codec", about: "fcgi-proto encode/decode throughput", run: codec::run },
    Section { name: "mux", about: "fcgi-mux vs fastcgi-client, multiplexing, 1 GiB", run: mux::run },
    Section { name: "oneshot", about: "`fcgi get` vs `cgi-fcgi`, one-shot", run: oneshot::run },
    Section { name: "exporter", about: "`fcgi exporter`: 200 pools, one hung", run: exporter::run },
    Section { name: "serve", about: "`fcgi serve` vs nginx, HAProxy and Caddy", run: serve::run },
];

/// Shared state for sections: backends, gateways and the release CLI are started or built on
/// first use and stopped after the run.
#[derive(Default)]
pub struct Ctx {
    backends: Option<Backends>,
    gateways: Option<gateways::Stack>,
    fcgi: Option<crate::dist::Built>,
}

impl Ctx {
    /// The test backends (php-fpm ...), started on first call.
    pub fn backends(&mut self) -> Result<&mut Backends> {
        match &mut self.backends {
            Some(backends) => Ok(backends),
            slot => Ok(slot.insert(Backends::start()?)),
        }
    }

    /// php-fpm with HAProxy and nginx in front (see [`gateways`]), started on first call.
    pub fn gateways(&mut self) -> Result<&mut gateways::Stack> {
        let stack = match &mut self.gateways {
            Some(stack) => stack,
            slot => slot.insert(gateways::Stack::start()?),
        };
        stack.check_running()?;
        Ok(stack)
    }

    /// The `fcgi` executable, built on first call as `cargo xtask dist` builds it.
    pub fn fcgi(&mut self) -> Result<std::path::PathBuf> {
        match &mut self.fcgi {
            Some(built) => Ok(built.path.clone()),
            slot => Ok(slot.insert(crate::dist::build()?).path.clone()),
        }
    }

    /// How [`Ctx::fcgi`] built the CLI, for the reports.
    pub fn fcgi_build_line(&self) -> String {
        self.fcgi.as_ref().map_or("cargo xtask dist".into(), |built| built.how.clone())
    }
}

/// Runs the `selected` sections (all if empty) in [`SECTIONS`] order, updates docs/BENCHMARKS.md
/// with those that succeeded, and fails if any section failed.
pub fn run(selected: &[String], list: bool) -> Result<ExitCode> {
    if list {
        for section in SECTIONS {
            println!("{:<12} {}", section.name, section.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = selected.iter().find(|name| !SECTIONS.iter().any(|s| s.name == *name)) {
        let known: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
        bail!("unknown bench section {name:?}; sections: {}", known.join(", "));
    }
    let mut ctx = Ctx::default();
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    let chosen = |s: &&Section| selected.is_empty() || selected.iter().any(|name| name == s.name);
    for section in SECTIONS.iter().filter(chosen) {
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
    if !failed.is_empty() {
        bail!("bench section(s) failed: {}", failed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
