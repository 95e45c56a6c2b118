//! The transcode job: source from storage to a local temp file, probe, plan, one ffmpeg run,
//! outputs to storage under this run's own prefix, then one fenced catalog write that makes
//! the media ready. A failed or fenced-out run deletes its own prefix and never touches the
//! output that is served.

use std::{path::Path, time::Duration};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::{Outcome, WorkerContext};
use crate::{
    catalog::{ClaimedJob, MediaFile, MediaOutput, Rendition},
    ids::MediaId,
    storage::{ObjectKey, StorageError},
};

fn retry(cause: &'static str, what: &str, e: impl std::fmt::Display) -> Outcome {
    tracing::warn!(error = %e, "{what}");
    Outcome::Failed {
        reason: format!("{what}; will retry"),
        retry: true,
        cause,
    }
}

fn give_up(cause: &'static str, reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
        retry: false,
        cause,
    }
}

pub async fn run(context: &WorkerContext, job: &ClaimedJob) -> Outcome {
    let Some(id) = MediaId::parse(&job.subject) else {
        return give_up("internal", "the job names no valid media");
    };
    let media = match context.catalog.get_media(&id).await {
        Ok(Some(media)) => media,
        Ok(None) => return give_up("deleted", "the media was deleted"),
        Err(e) => return retry("catalog", "the catalog is unavailable", e),
    };
    match context.catalog.start_media(&job.lease, &id).await {
        Ok(true) => {}
        Ok(false) => return Outcome::LeaseLost,
        Err(e) => return retry("catalog", "the catalog is unavailable", e),
    }
    let dir = match tempfile::Builder::new()
        .prefix("job-")
        .tempdir_in(&context.work_dir)
    {
        Ok(dir) => dir,
        Err(e) => return retry("scratch", "no scratch space for the transcode", e),
    };
    let source = dir.path().join("source");
    match fetch(context, &ObjectKey::file(&media.file_id), &source).await {
        Ok(()) => {}
        Err(StorageError::NotFound) => {
            return give_up("deleted", "the source file no longer exists")
        }
        Err(e) => return retry("storage", "could not read the source from storage", e),
    }

    let limits = transcoder::Limits {
        max_duration: Duration::from_secs(context.config.max_duration_secs),
        timeout: Duration::from_secs(context.config.transcode_timeout_secs),
        ..transcoder::Limits::default()
    };
    let tools = &context.tools;
    let probe = match transcoder::probe(tools, &source, &limits).await {
        Ok(probe) => probe,
        Err(e) => return transcode_failed(e),
    };
    let options = transcoder::LadderOptions {
        max_height: context.config.max_height,
        segment_seconds: context.config.segment_seconds,
        preset: context.config.x264_preset.clone(),
        ..transcoder::LadderOptions::default()
    };
    let ladder = match transcoder::plan_ladder(&probe, &options) {
        Ok(ladder) => ladder,
        Err(e) => return transcode_failed(e),
    };
    let out_dir = dir.path().join("out");
    if let Err(e) = tokio::fs::create_dir_all(&out_dir).await {
        return retry("scratch", "no scratch space for the transcode", e);
    }

    let (progress_tx, progress_rx) = tokio::sync::watch::channel(0u8);
    let reporter = tokio::spawn(report_progress(
        context.clone(),
        job.lease.clone(),
        id.clone(),
        progress_rx,
    ));
    let report = move |percent: u8| {
        let _ = progress_tx.send(percent);
    };
    let output =
        transcoder::transcode(tools, &source, &probe, &ladder, &out_dir, &limits, &report).await;
    reporter.abort();
    let output = match output {
        Ok(output) => output,
        Err(e) => return transcode_failed(e),
    };

    let run = format!("r{}", job.lease.token);
    let prefix = ObjectKey::media_run_prefix(&id, &run);
    let files = match upload_outputs(context, &out_dir, &prefix, &output).await {
        Ok(files) => files,
        Err(e) => {
            discard_run(context, &prefix).await;
            return retry("storage", "could not store the renditions", e);
        }
    };
    let result = MediaOutput {
        prefix: prefix.clone(),
        renditions: output.renditions.iter().map(rendition).collect(),
        duration: Some(probe.duration),
        files,
    };
    match context
        .catalog
        .complete_media(&job.lease, &id, &result)
        .await
    {
        Ok(true) => Outcome::Done,
        Ok(false) => {
            // Fenced out (another attempt owns the job now) or the media was deleted.
            discard_run(context, &prefix).await;
            Outcome::LeaseLost
        }
        Err(e) => {
            discard_run(context, &prefix).await;
            retry("catalog", "the catalog is unavailable", e)
        }
    }
}

fn transcode_failed(e: transcoder::TranscodeError) -> Outcome {
    tracing::info!(error = %e, "transcode failed");
    let cause = match &e {
        transcoder::TranscodeError::Unsupported(_) => "unsupported",
        transcoder::TranscodeError::LimitExceeded(_) => "limit",
        transcoder::TranscodeError::Timeout => "timeout",
        transcoder::TranscodeError::Failed(_) => "ffmpeg",
        _ => "internal",
    };
    Outcome::Failed {
        reason: e.reason(),
        retry: e.is_retryable(),
        cause,
    }
}

fn rendition(info: &transcoder::RenditionInfo) -> Rendition {
    Rendition {
        kind: match info.kind {
            transcoder::RenditionKind::Video => "video",
            transcoder::RenditionKind::Audio => "audio",
        }
        .to_owned(),
        width: info.width,
        height: info.height,
        bandwidth: info.bandwidth,
        codecs: info.codecs.clone(),
    }
}

/// Copies an object to a local file: ffmpeg only ever reads local files.
async fn fetch(context: &WorkerContext, key: &ObjectKey, to: &Path) -> Result<(), StorageError> {
    let mut stream = context.storage.get(key, None).await?;
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(StorageError::from_io)?;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(StorageError::from_io)?)
            .await
            .map_err(StorageError::from_io)?;
    }
    file.flush().await.map_err(StorageError::from_io)
}

async fn upload_outputs(
    context: &WorkerContext,
    out_dir: &Path,
    prefix: &str,
    output: &transcoder::Output,
) -> Result<Vec<MediaFile>, StorageError> {
    let mut stored = Vec::with_capacity(output.files.len());
    for file in &output.files {
        let path = file
            .path
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let key = ObjectKey::media_file(prefix, &path).ok_or_else(|| {
            StorageError::Other(anyhow::anyhow!(
                "the transcoder produced an unsafe path {path:?}"
            ))
        })?;
        let local = tokio::fs::File::open(out_dir.join(&file.path))
            .await
            .map_err(StorageError::from_io)?;
        let put = context
            .storage
            .put(&key, ReaderStream::with_capacity(local, 256 * 1024).boxed())
            .await?;
        stored.push(MediaFile {
            path,
            size: put.size,
            sha256: put.sha256,
            content_type: file.content_type.to_owned(),
        });
    }
    Ok(stored)
}

async fn discard_run(context: &WorkerContext, prefix: &str) {
    if let Err(e) = context.storage.delete_prefix(prefix).await {
        // The sweeper removes runs no ready media serves.
        tracing::warn!(%prefix, error = %e, "could not remove a discarded run's output");
    }
}

/// Writes progress (fenced) at most once a second, and only when it changed.
async fn report_progress(
    context: WorkerContext,
    lease: crate::catalog::Lease,
    id: MediaId,
    mut progress: tokio::sync::watch::Receiver<u8>,
) {
    let mut written = 0u8;
    while progress.changed().await.is_ok() {
        let now = *progress.borrow_and_update();
        // Ready is the catalog's word for 100; progress stays below it until then.
        let now = now.min(99);
        if now != written {
            match context.catalog.media_progress(&lease, &id, now).await {
                Ok(_) => written = now,
                Err(e) => tracing::debug!(error = %e, "progress not recorded"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
