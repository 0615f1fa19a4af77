//! Bench section `codec`: fcgi-proto decode/encode throughput, `cargo bench -p fcgi-proto`
//! (divan, `fcgi-proto/benches/codec.rs`), its table copied as printed. There is no standalone
//! FastCGI codec crate to set beside ours, so the peer in the same run is a plain `memcpy` of the
//! same bytes through the same buffer: the ceiling for any decoder that hands out owned buffers.

use anyhow::{Context, Result, bail};

use super::{Ctx, Report};
use crate::process;
use crate::workspace;

const BENCH_ARGS: &[&str] = &["bench", "--quiet", "-p", "fcgi-proto", "--bench", "codec"];

/// Runs the codec benchmark; returns its report.
pub fn run(_ctx: &mut Ctx) -> Result<Report> {
    let output = workspace::cargo().args(BENCH_ARGS).output().context("running cargo bench")?;
    process::bail_if_interrupted()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("cargo bench failed ({}): {stderr}", process::describe(output.status));
    }
    let stdout = String::from_utf8(output.stdout).context("cargo bench printed non-UTF-8")?;
    let table: String =
        stdout.lines().skip_while(|l| !l.starts_with("codec")).map(|l| format!("{l}\n")).collect();
    if table.is_empty() {
        bail!("cargo bench printed no divan table: {stdout}");
    }
    Ok(Report {
        title: "Codec: decode and encode throughput (fcgi-proto)".into(),
        command: format!("cargo xtask bench codec   # = cargo {}", BENCH_ARGS.join(" ")),
        table: format!("```\n{table}```\n"),
        notes: "divan's output (time per iteration; throughput in the second line of each case). \
                The cases are described in `fcgi-proto/benches/codec.rs`: decoding is fed 64 KiB \
                at a time; the 64 MiB response has php-fpm's record sizes; `memcpy` copies the same \
                64 MiB through the same 64 KiB buffer, the peer figure; the request case is \
                BEGIN_REQUEST + 26 nginx-like params + empty STDIN."
            .into(),
    })
}
