//! `fcgi`: curl for FastCGI.
//!
//! Skeleton: the commands land with the CLI issue.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("fcgi: no commands yet (the command-line tool is being built)")
}
