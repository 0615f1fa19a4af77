//! `cargo xtask fuzz [TARGET] [--time SECS] [-- LIBFUZZER_ARGS...]`: run a cargo-fuzz (libFuzzer)
//! target of `fcgi-proto/fuzz/` for a while, on the stable toolchain.
//!
//! How this works without nightly: cargo-fuzz's default AddressSanitizer needs `-Zsanitizer`, which
//! only nightly accepts, but with `--sanitizer none` cargo-fuzz passes only stable flags
//! (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`, `--cfg fuzzing`), so libFuzzer's
//! coverage-guided loop works as is. We build optimised with debug assertions (so arithmetic
//! overflow panics) — the command run is, from `fcgi-proto/fuzz/`:
//!
//! ```text
//! cargo fuzz run --release --debug-assertions --sanitizer none TARGET -- -max_total_time=SECS -timeout=10
//! ```
//!
//! No `RUSTC_BOOTSTRAP` is needed. Rust code without `unsafe` gains little from ASan; a panic
//! (including overflow) is what the targets find. cargo-fuzz is installed with
//! `cargo install cargo-fuzz --locked` when missing. `CARGO_TARGET_DIR` is removed from the
//! environment so fuzz builds (different RUSTFLAGS) stay in `fcgi-proto/fuzz/target/`.
//! The corpus grows in `fuzz/corpus/TARGET/`, findings land in `fuzz/artifacts/TARGET/` (both
//! git-ignored); on a finding we print the input's path and the command reproducing it, and exit 1.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::{process, workspace};

/// The fuzz project directory, relative to the repository root.
const FUZZ_DIR: &str = "fcgi-proto/fuzz";

/// Flags making cargo-fuzz work on stable (see the module docs).
const BUILD_FLAGS: [&str; 4] = ["--release", "--debug-assertions", "--sanitizer", "none"];

/// Runs `target` for `seconds`; exit code 1 on a finding.
pub fn run(target: &str, seconds: u64, extra: &[String]) -> Result<ExitCode> {
    let fuzz_dir = workspace::root().join(FUZZ_DIR);
    let targets = list_targets(&fuzz_dir)?;
    if !targets.iter().any(|t| t == target) {
        bail!("unknown fuzz target {target:?}; targets in {FUZZ_DIR}/fuzz_targets: {}", targets.join(", "));
    }
    if seconds == 0 {
        bail!("--time must be at least 1 second");
    }
    ensure_cargo_fuzz()?;

    let artifacts = fuzz_dir.join("artifacts").join(target);
    let before = list_files(&artifacts);
    let mut args: Vec<String> = vec!["fuzz".into(), "run".into()];
    args.extend(BUILD_FLAGS.map(String::from));
    args.extend([target.to_owned(), "--".into(), format!("-max_total_time={seconds}"), "-timeout=10".into()]);
    // libFuzzer's default of 4,096 bytes would never build a record near the 65,535-byte
    // content limit; 70,000 covers one with its header and 255 bytes of padding.
    if !extra.iter().any(|arg| arg.starts_with("-max_len=")) {
        args.push("-max_len=70000".into());
    }
    args.extend(extra.iter().cloned());
    println!(
        "xtask: fuzzing {target} for {seconds} s: (cd {FUZZ_DIR} && {})",
        workspace::display("cargo", &args)
    );
    let mut cmd = workspace::cargo();
    cmd.current_dir(&fuzz_dir).args(&args).env_remove("CARGO_TARGET_DIR");
    let status = process::run("cargo fuzz", &mut cmd)?;
    if status.success() {
        println!("xtask: no finding for {target} in {seconds} s");
        return Ok(ExitCode::SUCCESS);
    }

    let found: Vec<PathBuf> = list_files(&artifacts).difference(&before).cloned().collect();
    if found.is_empty() {
        eprintln!(
            "xtask: cargo fuzz failed ({}) without saving an input: see its output above",
            process::describe(status)
        );
    } else {
        for input in &found {
            eprintln!("xtask: finding saved to {}", input.display());
            eprintln!(
                "xtask: reproduce with: (cd {FUZZ_DIR} && cargo fuzz run {} {target} {})",
                BUILD_FLAGS.join(" "),
                input.display()
            );
        }
    }
    Ok(ExitCode::FAILURE)
}

/// Target names: the `fuzz_targets/*.rs` file stems.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing fuzz targets in {}", dir.display()))? {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        let stem = path.file_stem().and_then(|s| s.to_str());
        match stem {
            Some(stem) if path.extension().is_some_and(|ext| ext == "rs") => targets.push(stem.to_owned()),
            _ => {}
        }
    }
    targets.sort();
    Ok(targets)
}

/// Files directly in `dir` (empty if it does not exist).
fn list_files(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default()
}

/// Installs cargo-fuzz unless `cargo fuzz --version` already works.
fn ensure_cargo_fuzz() -> Result<()> {
    let installed = workspace::cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!("xtask: cargo-fuzz not found, running cargo install cargo-fuzz --locked");
        process::run_ok(
            "cargo install cargo-fuzz",
            workspace::cargo().args(["install", "cargo-fuzz", "--locked"]).env_remove("CARGO_TARGET_DIR"),
        )?;
    }
    Ok(())
}
