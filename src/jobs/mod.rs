//! The job queue's workers. A job is claimed with a lease in a short transaction, runs outside
//! any transaction, heartbeats every third of its lease, and writes its results only through
//! fenced catalog calls that check its lease token. Every worker also runs the rescuer, which
//! returns expired leases to the queue (or fails a job whose attempts are spent).

mod transcode;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use crate::{
    catalog::{ClaimedJob, DynCatalog, Lease, TRANSCODE_JOB},
    config::WorkerConfig,
    storage::DynStorage,
};

/// Everything a worker needs; cheap to clone.
#[derive(Clone)]
pub struct WorkerContext {
    pub storage: DynStorage,
    pub catalog: DynCatalog,
    pub config: Arc<WorkerConfig>,
    pub tools: Arc<transcoder::Tools>,
    pub work_dir: PathBuf,
    /// Poked when a job is queued in this process, so an idle worker starts at once instead of
    /// at its next poll.
    pub wakeup: Arc<tokio::sync::Notify>,
}

impl WorkerContext {
    pub async fn new(
        storage: DynStorage,
        catalog: DynCatalog,
        config: WorkerConfig,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let tools = match &config.ffmpeg {
            Some(ffmpeg) => transcoder::Tools::new(ffmpeg.clone()),
            None => transcoder::Tools::from_path_env().map_err(|e| anyhow::anyhow!(e.reason()))?,
        };
        let work_dir = config
            .work_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("work"));
        tokio::fs::create_dir_all(&work_dir).await?;
        Ok(Self {
            storage,
            catalog,
            config: Arc::new(config),
            tools: Arc::new(tools),
            work_dir,
            wakeup: Arc::default(),
        })
    }
}

/// Starts `count` workers that run until `stop` is cancelled.
pub fn spawn(
    context: WorkerContext,
    count: usize,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    context.catalog.watch_queue(context.wakeup.clone());
    (0..count)
        .map(|n| {
            let owner = format!("{}-{}-{n}", hostname(), std::process::id());
            tokio::spawn(run_worker(context.clone(), owner, stop.clone()))
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "reelay".to_owned())
}

async fn run_worker(context: WorkerContext, owner: String, stop: CancellationToken) {
    let poll = Duration::from_secs(context.config.job_poll_secs.max(1));
    let lease = context.config.lease();
    tracing::info!(%owner, "worker started");
    let mut last_rescue = Instant::now() - lease;
    while !stop.is_cancelled() {
        if last_rescue.elapsed() >= lease / 3 {
            last_rescue = Instant::now();
            match context.catalog.rescue_expired().await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("reelay_jobs_rescued_total").increment(n);
                    tracing::warn!(
                        rescued = n,
                        "returned jobs with expired leases to the queue"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "rescue failed"),
            }
        }
        match context.catalog.claim_job(&owner, lease).await {
            Ok(Some(job)) => {
                metrics::counter!("reelay_jobs_claimed_total").increment(1);
                run_job(&context, job, &stop).await;
            }
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = context.wakeup.notified() => {}
                    () = stop.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a job failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
    tracing::info!(%owner, "worker stopped");
}

/// How a job ended, for metrics and for the queue.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// Failed with a reason for the user; `retry` when another attempt may succeed; `cause` is
    /// a small fixed vocabulary for metrics (`unsupported`, `storage`, `catalog`, ...).
    Failed {
        reason: String,
        retry: bool,
        cause: &'static str,
    },
    /// The lease was lost (rescued and claimed by another worker): write nothing more.
    LeaseLost,
}

async fn run_job(context: &WorkerContext, job: ClaimedJob, stop: &CancellationToken) {
    let started = Instant::now();
    let lost = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(
        context.catalog.clone(),
        job.lease.clone(),
        context.config.lease(),
        lost.clone(),
    ));
    tracing::info!(job = job.lease.job_id, subject = %job.subject, attempt = job.attempt, "job claimed");
    let work = async {
        match job.kind.as_str() {
            TRANSCODE_JOB => transcode::run(context, &job).await,
            other => Outcome::Failed {
                reason: format!("unknown job kind {other:?}"),
                retry: false,
                cause: "internal",
            },
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        () = lost.cancelled() => Outcome::LeaseLost,
        () = stop.cancelled() => Outcome::Failed {
            reason: "the worker shut down".into(),
            retry: true,
            cause: "shutdown",
        },
    };
    heartbeat.abort();
    let label = match &outcome {
        Outcome::Done => "done",
        Outcome::Failed { retry: true, .. } => "retry",
        Outcome::Failed { retry: false, .. } => "failed",
        Outcome::LeaseLost => "lease_lost",
    };
    metrics::counter!("reelay_jobs_finished_total", "kind" => job.kind.clone(), "outcome" => label)
        .increment(1);
    metrics::histogram!("reelay_job_duration_seconds", "kind" => job.kind.clone(), "outcome" => label)
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Outcome::Done => tracing::info!(job = job.lease.job_id, "job done"),
        Outcome::LeaseLost => {
            tracing::warn!(job = job.lease.job_id, "lease lost; results discarded")
        }
        Outcome::Failed {
            reason,
            retry,
            cause,
        } => {
            metrics::counter!("reelay_job_failures_total", "kind" => job.kind.clone(), "cause" => cause)
                .increment(1);
            tracing::warn!(job = job.lease.job_id, %reason, retry, "job failed");
            if let Err(e) = context.catalog.fail_job(&job.lease, &reason, retry).await {
                tracing::warn!(job = job.lease.job_id, error = %e, "recording the failure failed; the rescuer will retry");
            }
        }
    }
}

/// Extends the lease every third of its length; cancels `lost` when the lease is gone.
async fn heartbeat(catalog: DynCatalog, lease: Lease, length: Duration, lost: CancellationToken) {
    let mut ticker = tokio::time::interval(length / 3);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match catalog.heartbeat(&lease, length).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // A catalog hiccup is not a lost lease; the next beat may land before it expires.
            Err(e) => tracing::warn!(job = lease.job_id, error = %e, "heartbeat failed"),
        }
    }
}
