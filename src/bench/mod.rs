//! `strongroom bench`: measures the vault against raw SQL on the same PostgreSQL.

/// Options of `strongroom bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Smaller pre-load; finishes in under 5 minutes.
    #[arg(long)]
    pub quick: bool,
}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench is not implemented yet")
}
