//! `cargo xtask dist`: the release `fcgi` executable as we ship it, and the one the benchmarks
//! measure.
//!
//! On Linux with glibc it is linked statically (`-C target-feature=+crt-static`, a static PIE).
//! `fcgi` is often a one-shot process (a health check every few seconds), and a dynamically
//! linked Rust executable spends a third of a millisecond in the dynamic loader before `main`
//! (libc, libm and libgcc_s to map, relocate and bind): measured here with `perf stat -r 300
//! fcgi --version`, 1.11 ms dynamic against 0.79 ms static. glibc's resolver works in a static
//! executable for the `files` and `dns` sources of /etc/nsswitch.conf (built into libc since
//! glibc 2.34); any other NSS module (mdns, myhostname, ...) is loaded at run time and needs the
//! glibc version the executable was linked with.
//!
//! The flag reaches the final `fcgi` link only, through `cargo rustc`: in RUSTFLAGS it would
//! also apply to proc-macro crates, which cannot be built as static executables. Elsewhere
//! (macOS, musl, ...) this is a plain `cargo build --release`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::bench::measure;

/// The cargo arguments that build the release `fcgi`.
pub fn build_args() -> Vec<&'static str> {
    let mut args = vec!["rustc", "--release", "-p", "fcgi-cli", "--bin", "fcgi"];
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        args.extend(["--", "-C", "target-feature=+crt-static"]);
    }
    args
}

/// Builds the release `fcgi`; returns its path.
pub fn build() -> Result<PathBuf> {
    let mut built = measure::build_bins("fcgi-cli", &build_args(), &["fcgi"])?;
    built.remove("fcgi").context("build_bins returned no fcgi")
}

/// `cargo xtask dist`: builds it and says where it is.
pub fn run() -> Result<ExitCode> {
    let path = build()?;
    let size = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?.len();
    println!("xtask: dist: {} ({:.1} MiB)", path.display(), size as f64 / (1024.0 * 1024.0));
    Ok(ExitCode::SUCCESS)
}
