//! `reelay migrate-catalog`: copies an SQLite catalog into PostgreSQL, table by table in pages
//! (memory stays bounded by one page), ids and timestamps as they are. Stop every Reelay process
//! using the SQLite catalog first: rows written during the copy may be missed, and the final
//! count check then fails.

use anyhow::Context;
use clap::Args;

use crate::{
    catalog::{
        Batch, Catalog, JobRow, MediaRecord, MediaState, PostgresCatalog, SqliteCatalog, Table,
        TRANSCODE_JOB,
    },
    ids::MediaId,
};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite catalog to copy from, e.g. sqlite://./data/reelay.db.
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL catalog to copy into, e.g. postgres://reelay@db/reelay.
    #[arg(long)]
    pub to: String,
    /// Copy even if the PostgreSQL catalog already holds rows, e.g. to finish an interrupted
    /// copy: rows with the same ids are overwritten with the source's, other rows are kept.
    #[arg(long)]
    pub force: bool,
}

/// Rows read and written per round trip.
const PAGE: u32 = 500;

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    if !args.from.starts_with("sqlite:") {
        anyhow::bail!("--from must be an SQLite catalog URL (sqlite://PATH)");
    }
    if !(args.to.starts_with("postgres:") || args.to.starts_with("postgresql:")) {
        anyhow::bail!("--to must be a PostgreSQL catalog URL (postgres://...)");
    }
    let source = SqliteCatalog::open_existing(&args.from)
        .await
        .context("opening the source catalog (--from)")?;
    let target = PostgresCatalog::open(&args.to)
        .await
        .context("opening the target catalog (--to)")?;

    let held = counts(&target).await?;
    if !args.force && held.iter().any(|(_, n)| *n > 0) {
        anyhow::bail!(
            "the PostgreSQL catalog is not empty ({}); refusing to copy into it. \
             Run again with --force to copy anyway: rows with the same ids are overwritten \
             with the source's, other rows are kept",
            describe(&held)
        );
    }

    println!("Copying the SQLite catalog into PostgreSQL");
    for table in Table::ALL {
        let copied = copy_table(&source, &target, table).await?;
        let mut line = format!("{:<12} {:>9} copied", table.name(), copied.rows);
        if copied.requeued > 0 {
            line.push_str(&format!(
                " ({} running in SQLite, queued again with their media: no worker runs against \
                 the new catalog yet)",
                copied.requeued
            ));
        }
        println!("{line}");
    }

    let expected = counts(&source).await?;
    let found = counts(&target).await?;
    let mismatches: Vec<String> = expected
        .iter()
        .zip(&found)
        .filter(|((_, a), (_, b))| a != b)
        .map(|((table, a), (_, b))| format!("{}: {a} in SQLite, {b} in PostgreSQL", table.name()))
        .collect();
    if !mismatches.is_empty() {
        anyhow::bail!(
            "the copy does not match its source ({}). Was a Reelay process still writing to \
             the SQLite catalog, or did PostgreSQL already hold other rows?",
            mismatches.join("; ")
        );
    }
    println!("Verified: PostgreSQL holds as many rows as the SQLite catalog in every table");
    Ok(())
}

struct Copied {
    rows: u64,
    requeued: u64,
}

async fn copy_table(
    source: &dyn Catalog,
    target: &dyn Catalog,
    table: Table,
) -> anyhow::Result<Copied> {
    let mut copied = Copied {
        rows: 0,
        requeued: 0,
    };
    let mut after = None;
    loop {
        let mut batch = source
            .export_page(table, after.as_ref(), PAGE)
            .await
            .with_context(|| format!("reading {} from SQLite", table.name()))?;
        if batch.is_empty() {
            return Ok(copied);
        }
        after = batch.last_key();
        let requeued_media = match &mut batch {
            Batch::Jobs(jobs) => {
                copied.requeued += jobs.iter().filter(|job| job.state == "running").count() as u64;
                requeue_running(source, jobs).await?
            }
            _ => Vec::new(),
        };
        target
            .import(&batch)
            .await
            .with_context(|| format!("writing {} into PostgreSQL", table.name()))?;
        if !requeued_media.is_empty() {
            // Import overwrites: the media copied earlier takes its queued state.
            target
                .import(&Batch::Media(requeued_media))
                .await
                .context("queueing the media of running jobs again")?;
        }
        copied.rows += batch.len() as u64;
    }
}

/// A running job's worker holds a lease on the old catalog and cannot finish against the new
/// one: each running job goes back to the queue, as the rescuer would put it once the lease
/// expired (the interrupted attempt counts), and so does its media. Returns the media to
/// write again.
async fn requeue_running(
    source: &dyn Catalog,
    jobs: &mut [JobRow],
) -> anyhow::Result<Vec<MediaRecord>> {
    let mut requeued = Vec::new();
    for job in jobs.iter_mut().filter(|job| job.state == "running") {
        job.state = "queued".into();
        job.lease_owner = None;
        job.lease_expires_at = None;
        let media = match MediaId::parse(&job.subject) {
            Some(id) if job.kind == TRANSCODE_JOB => source.get_media(&id).await?,
            _ => None,
        };
        requeued.extend(media.map(requeue_media));
    }
    Ok(requeued)
}

/// The media of a requeued job waits in the queue again, as after a rescue.
fn requeue_media(mut media: MediaRecord) -> MediaRecord {
    if media.state == MediaState::Processing {
        media.state = MediaState::Queued;
    }
    if media.state == MediaState::Queued {
        media.progress = 0;
    }
    media
}

async fn counts(catalog: &dyn Catalog) -> anyhow::Result<Vec<(Table, u64)>> {
    let mut counts = Vec::new();
    for table in Table::ALL {
        let n = catalog
            .count_rows(table)
            .await
            .with_context(|| format!("counting {}", table.name()))?;
        counts.push((table, n));
    }
    Ok(counts)
}

fn describe(counts: &[(Table, u64)]) -> String {
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{}: {n}", table.name()))
        .collect::<Vec<_>>()
        .join(", ")
}
