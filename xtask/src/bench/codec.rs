//! Bench section `codec`: fcgi-proto decode/encode throughput on realistic streams.
//!
//! Runs `fcgi-proto/examples/codec_bench.rs` (release) and turns its tab-separated lines
//! into a table. There is no standalone FastCGI codec crate to set beside ours, so the peer
//! in the same run is a plain `memcpy` of the same bytes through the same buffer: the ceiling
//! for any decoder that hands out owned record buffers.

use anyhow::{Context, Result, bail};

use super::{Ctx, Report};
use crate::process;
use crate::workspace;

const EXAMPLE_ARGS: &[&str] =
    &["run", "--release", "--quiet", "-p", "fcgi-proto", "--example", "codec_bench"];

/// Measures the codec; returns its report.
pub fn run(_ctx: &mut Ctx) -> Result<Report> {
    let mut cmd = workspace::cargo();
    cmd.args(EXAMPLE_ARGS);
    let output = cmd.output().context("running the codec_bench example")?;
    process::bail_if_interrupted()?;
    if !output.status.success() {
        bail!(
            "codec_bench failed ({}): {}",
            process::describe(output.status),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8(output.stdout).context("codec_bench printed non-UTF-8")?;
    let mut table = String::from(
        "| case | size | records | median time | throughput | per record |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let row = Row::parse(line).with_context(|| format!("unexpected codec_bench line {line:?}"))?;
        table.push_str(&row.render());
    }
    Ok(Report {
        title: "Codec: decode and encode throughput (fcgi-proto)".into(),
        command: format!("cargo xtask bench codec   # = cargo {}", EXAMPLE_ARGS.join(" ")),
        table,
        notes: "Decoding is fed 64 KiB at a time, as from a socket read; records are split off the \
                buffer without copying. The 64 MiB response is shaped like php-fpm's (a padded head \
                record, 65528-byte unpadded body records, a STDERR line, END_REQUEST); the hello-world \
                stream is 20,000 small padded STDOUT records each followed by END_REQUEST. `memcpy` \
                copies the same 64 MiB through the same 64 KiB buffer: the peer figure. Encoding \
                writes into a reused buffer; the request case is BEGIN_REQUEST + 26 nginx-like \
                params + empty STDIN. Median of 15 runs after one warm-up."
            .into(),
    })
}

struct Row {
    case: String,
    bytes: f64,
    records: f64,
    seconds: f64,
}

impl Row {
    fn parse(line: &str) -> Option<Row> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [case, bytes, records, seconds, _runs] = fields[..] else { return None };
        Some(Row {
            case: case.to_string(),
            bytes: bytes.parse().ok()?,
            records: records.parse().ok()?,
            seconds: seconds.parse().ok()?,
        })
    }

    fn render(&self) -> String {
        let mib = self.bytes / (1024.0 * 1024.0);
        let throughput = if self.seconds > 0.0 { self.bytes / self.seconds / 1e6 } else { f64::INFINITY };
        let per_record_ns = if self.records > 0.0 { self.seconds * 1e9 / self.records } else { 0.0 };
        format!(
            "| {} | {:.1} MiB | {} | {:.2} ms | {:.0} MB/s | {:.0} ns |\n",
            self.case,
            mib,
            self.records,
            self.seconds * 1e3,
            throughput,
            per_record_ns
        )
    }
}
