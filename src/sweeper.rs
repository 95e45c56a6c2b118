//! Removes what a crash can leave behind: unfinished writes, and blobs whose row was never
//! written (bytes become durable before the row, so a crash between the two leaves a blob no
//! row references). A blob younger than the grace period is never touched: its row may be
//! about to be written.

use std::time::{Duration, SystemTime};

use crate::{
    catalog::DynCatalog,
    ids::{FileId, MediaId},
    storage::{DynStorage, ObjectKey},
};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub incomplete_removed: u64,
    pub orphans_removed: u64,
    /// Resumable uploads past their expiry, ended and their bytes removed.
    pub uploads_expired: u64,
}

pub async fn sweep_once(
    storage: &DynStorage,
    catalog: &DynCatalog,
    grace: Duration,
) -> anyhow::Result<SweepReport> {
    let uploads_expired = crate::api::expire_uploads(storage, catalog).await?;
    let keep = catalog
        .active_upload_files()
        .await?
        .iter()
        .filter_map(|id| FileId::parse(id))
        .map(|id| ObjectKey::file(&id).as_str().to_owned())
        .collect();
    let incomplete_removed = storage.cleanup_incomplete(grace, &keep).await?;
    let cutoff = SystemTime::now() - grace;
    let candidates: Vec<(FileId, ObjectKey)> = storage
        .list(ObjectKey::FILES_PREFIX)
        .await?
        .into_iter()
        .filter(|o| o.modified < cutoff)
        .filter_map(|o| {
            let id = ObjectKey::file_id_of(&o.key)?;
            let key = ObjectKey::file(&id);
            Some((id, key))
        })
        .collect();
    let ids: Vec<FileId> = candidates.iter().map(|(id, _)| id.clone()).collect();
    let referenced = catalog.existing_files(&ids).await?;
    let mut orphans_removed = 0;
    for (id, key) in candidates {
        if !referenced.contains(&id) {
            storage.delete(&key).await?;
            orphans_removed += 1;
            tracing::info!(key = %key, "swept a blob no row references");
        }
    }
    orphans_removed += sweep_media_runs(storage, catalog, cutoff).await?;
    metrics::counter!("reelay_swept_blobs_total").increment(orphans_removed);
    Ok(SweepReport {
        incomplete_removed,
        orphans_removed,
        uploads_expired,
    })
}

/// Removes transcode outputs that no ready media serves: runs of deleted media, and runs that
/// failed or were fenced out and could not clean up after themselves.
async fn sweep_media_runs(
    storage: &DynStorage,
    catalog: &DynCatalog,
    cutoff: SystemTime,
) -> anyhow::Result<u64> {
    let mut runs: std::collections::HashMap<String, (MediaId, bool)> = Default::default();
    for object in storage.list(ObjectKey::MEDIA_PREFIX).await? {
        if let Some((id, prefix)) = ObjectKey::media_run_of(&object.key) {
            let entry = runs.entry(prefix).or_insert((id, true));
            // A run is old only when every one of its objects is.
            entry.1 &= object.modified < cutoff;
        }
    }
    let ids: Vec<MediaId> = runs.values().map(|(id, _)| id.clone()).collect();
    let served = catalog.served_prefixes(&ids).await?;
    let mut removed = 0;
    for (prefix, (_, old)) in runs {
        if old && !served.contains(&prefix) {
            removed += storage.delete_prefix(&prefix).await?;
            tracing::info!(%prefix, "swept a transcode run no media serves");
        }
    }
    Ok(removed)
}

/// Sweeps now and then every `interval` until the task is dropped.
pub fn spawn(
    storage: DynStorage,
    catalog: DynCatalog,
    interval: Duration,
    grace: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            match sweep_once(&storage, &catalog, grace).await {
                Ok(report) => tracing::debug!(?report, "sweep finished"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "sweep failed"),
            }
        }
    })
}
