//! Project automation.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("xtask: nothing yet")
}
