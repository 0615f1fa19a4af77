//! Where the repository is and how to call cargo from xtask.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A `cargo` command (the same cargo that runs xtask, via `$CARGO`) run from the repository root.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root());
    cmd
}

/// Renders a command line for progress messages (`cargo test --workspace foo`).
pub fn display(program: &str, args: &[impl AsRef<str>]) -> String {
    std::iter::once(program).chain(args.iter().map(AsRef::as_ref)).collect::<Vec<_>>().join(" ")
}
