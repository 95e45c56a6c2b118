//! `reelay migrate-catalog`: copies an SQLite catalog into PostgreSQL.

use clap::Args;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite catalog to copy from, e.g. sqlite://./data/reelay.db.
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL catalog to copy into, e.g. postgres://reelay@db/reelay.
    #[arg(long)]
    pub to: String,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("migrate-catalog is not implemented yet")
}
