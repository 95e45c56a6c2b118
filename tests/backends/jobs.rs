//! The job queue and media state contract, as one suite every catalog engine must pass:
//! claims with leases, heartbeats, fencing tokens, rescue, bounded attempts, exactly-once runs.

use std::{collections::HashSet, sync::Arc, time::Duration};

use reelay::{
    catalog::{
        self, Access, DynCatalog, Lease, MediaFile, MediaOutput, MediaRecord, MediaState, Rendition,
    },
    ids::{FileId, MediaId},
};

/// `jobs_suite!(name, fixture)`: one `#[tokio::test]` per case below.
macro_rules! jobs_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            jobs_suite!(@cases $fixture;
                a_queued_media_is_claimed_once_and_completes,
                a_stale_lease_cannot_write_results,
                heartbeats_keep_a_lease_and_tell_when_it_is_gone,
                an_expired_lease_is_rescued_and_attempts_are_bounded,
                a_retryable_failure_requeues_until_attempts_run_out,
                a_permanent_failure_fails_the_media_with_its_reason,
                deleting_a_media_removes_its_job_and_fences_its_worker,
                eight_workers_run_every_job_exactly_once,
                media_list_is_newest_first_with_a_cursor
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture;
                $crate::jobs::$case(fixture.catalog.clone()).await;
            }
        )*
    };
}

const LONG: Duration = Duration::from_secs(60);

async fn queued_media(catalog: &DynCatalog, max_attempts: u32) -> MediaRecord {
    let now = catalog::now();
    let media = MediaRecord {
        id: MediaId::generate(),
        file_id: FileId::generate(),
        access: Access::Public,
        state: MediaState::Queued,
        progress: 0,
        error: None,
        output_prefix: None,
        renditions: Vec::new(),
        duration: None,
        created_at: now,
        updated_at: now,
    };
    catalog.create_media(&media, max_attempts).await.unwrap();
    media
}

fn output(id: &MediaId, run: &str) -> MediaOutput {
    MediaOutput {
        prefix: format!("media/{id}/{run}/"),
        renditions: vec![Rendition {
            kind: "video".into(),
            width: Some(640),
            height: Some(360),
            bandwidth: 800_000,
            codecs: "avc1.64001e".into(),
        }],
        duration: Some(3.5),
        files: vec![
            MediaFile {
                path: "master.m3u8".into(),
                size: 120,
                sha256: "a".repeat(64),
                content_type: "application/vnd.apple.mpegurl".into(),
            },
            MediaFile {
                path: "seg-0-00001.m4s".into(),
                size: 5000,
                sha256: "b".repeat(64),
                content_type: "video/iso.segment".into(),
            },
        ],
    }
}

async fn media(catalog: &DynCatalog, id: &MediaId) -> MediaRecord {
    catalog.get_media(id).await.unwrap().expect("media exists")
}

pub async fn a_queued_media_is_claimed_once_and_completes(catalog: DynCatalog) {
    let created = queued_media(&catalog, 3).await;
    let job = catalog.claim_job("w1", LONG).await.unwrap().expect("a job");
    assert_eq!(job.subject, created.id.as_str());
    assert_eq!(job.kind, catalog::TRANSCODE_JOB);
    assert_eq!(job.attempt, 1);
    assert_eq!(
        catalog.claim_job("w2", LONG).await.unwrap(),
        None,
        "claimed once"
    );

    assert!(catalog.start_media(&job.lease, &created.id).await.unwrap());
    assert_eq!(
        media(&catalog, &created.id).await.state,
        MediaState::Processing
    );
    assert!(catalog
        .media_progress(&job.lease, &created.id, 42)
        .await
        .unwrap());
    assert_eq!(media(&catalog, &created.id).await.progress, 42);

    let out = output(&created.id, "r1");
    assert!(catalog
        .complete_media(&job.lease, &created.id, &out)
        .await
        .unwrap());
    let ready = media(&catalog, &created.id).await;
    assert_eq!(ready.state, MediaState::Ready);
    assert_eq!(ready.progress, 100);
    assert_eq!(ready.output_prefix.as_deref(), Some(out.prefix.as_str()));
    assert_eq!(ready.renditions, out.renditions);
    assert_eq!(ready.duration, Some(3.5));
    assert_eq!(catalog.media_files(&created.id).await.unwrap(), out.files);
    let served = catalog
        .served_prefixes(std::slice::from_ref(&created.id))
        .await
        .unwrap();
    assert_eq!(served, HashSet::from([out.prefix.clone()]));
    assert_eq!(
        catalog.claim_job("w1", LONG).await.unwrap(),
        None,
        "nothing left"
    );
}

pub async fn a_stale_lease_cannot_write_results(catalog: DynCatalog) {
    let created = queued_media(&catalog, 3).await;
    let first = catalog
        .claim_job("w1", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(catalog.rescue_expired().await.unwrap(), 1);
    let second = catalog.claim_job("w2", LONG).await.unwrap().unwrap();
    assert_eq!(second.lease.job_id, first.lease.job_id);
    assert!(
        second.lease.token > first.lease.token,
        "a new claim, a new fencing token"
    );
    assert_eq!(second.attempt, 2);

    // The first worker wakes up and tries to write: every write is refused.
    assert!(!catalog
        .start_media(&first.lease, &created.id)
        .await
        .unwrap());
    assert!(!catalog
        .media_progress(&first.lease, &created.id, 50)
        .await
        .unwrap());
    assert!(!catalog.heartbeat(&first.lease, LONG).await.unwrap());
    assert!(!catalog
        .complete_media(&first.lease, &created.id, &output(&created.id, "r1"))
        .await
        .unwrap());
    assert!(!catalog
        .fail_job(&first.lease, "stale", false)
        .await
        .unwrap());
    assert_ne!(media(&catalog, &created.id).await.state, MediaState::Ready);

    // The current holder's results land.
    let out = output(&created.id, "r2");
    assert!(catalog
        .complete_media(&second.lease, &created.id, &out)
        .await
        .unwrap());
    let ready = media(&catalog, &created.id).await;
    assert_eq!(ready.state, MediaState::Ready);
    assert_eq!(ready.output_prefix.as_deref(), Some(out.prefix.as_str()));
}

pub async fn heartbeats_keep_a_lease_and_tell_when_it_is_gone(catalog: DynCatalog) {
    queued_media(&catalog, 3).await;
    let job = catalog
        .claim_job("w1", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(catalog
            .heartbeat(&job.lease, Duration::from_millis(300))
            .await
            .unwrap());
        assert_eq!(
            catalog.rescue_expired().await.unwrap(),
            0,
            "a beating lease is not rescued"
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(catalog.rescue_expired().await.unwrap(), 1);
    assert!(
        !catalog.heartbeat(&job.lease, LONG).await.unwrap(),
        "the lease is gone"
    );
}

pub async fn an_expired_lease_is_rescued_and_attempts_are_bounded(catalog: DynCatalog) {
    let created = queued_media(&catalog, 2).await;
    for attempt in 1..=2 {
        let job = catalog
            .claim_job("w", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.attempt, attempt);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(catalog.rescue_expired().await.unwrap(), 1);
    }
    assert_eq!(catalog.claim_job("w", LONG).await.unwrap(), None);
    let failed = media(&catalog, &created.id).await;
    assert_eq!(failed.state, MediaState::Failed);
    let reason = failed.error.unwrap_or_default();
    assert!(reason.contains("stopped answering"), "{reason}");
    let counts = catalog.job_counts().await.unwrap();
    assert!(counts.contains(&("failed".to_string(), 1)), "{counts:?}");
}

pub async fn a_retryable_failure_requeues_until_attempts_run_out(catalog: DynCatalog) {
    let created = queued_media(&catalog, 2).await;
    let job = catalog.claim_job("w", LONG).await.unwrap().unwrap();
    assert!(catalog
        .fail_job(&job.lease, "storage blinked", true)
        .await
        .unwrap());
    assert_eq!(media(&catalog, &created.id).await.state, MediaState::Queued);
    // Requeued with a backoff: not claimable at once.
    assert_eq!(catalog.claim_job("w", LONG).await.unwrap(), None);
    let counts = catalog.job_counts().await.unwrap();
    assert!(counts.contains(&("queued".to_string(), 1)), "{counts:?}");
}

pub async fn a_permanent_failure_fails_the_media_with_its_reason(catalog: DynCatalog) {
    let created = queued_media(&catalog, 3).await;
    let job = catalog.claim_job("w", LONG).await.unwrap().unwrap();
    assert!(catalog.start_media(&job.lease, &created.id).await.unwrap());
    assert!(catalog
        .fail_job(
            &job.lease,
            "the file is not a supported media container",
            false
        )
        .await
        .unwrap());
    let failed = media(&catalog, &created.id).await;
    assert_eq!(failed.state, MediaState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("the file is not a supported media container")
    );
    assert_eq!(catalog.claim_job("w", LONG).await.unwrap(), None);
}

pub async fn deleting_a_media_removes_its_job_and_fences_its_worker(catalog: DynCatalog) {
    let created = queued_media(&catalog, 3).await;
    let job = catalog.claim_job("w", LONG).await.unwrap().unwrap();
    assert!(catalog.delete_media(&created.id).await.unwrap());
    assert!(!catalog.delete_media(&created.id).await.unwrap());
    assert!(catalog.get_media(&created.id).await.unwrap().is_none());
    assert!(!catalog
        .complete_media(&job.lease, &created.id, &output(&created.id, "r1"))
        .await
        .unwrap());
    assert!(catalog.media_files(&created.id).await.unwrap().is_empty());
    assert!(catalog
        .existing_media(std::slice::from_ref(&created.id))
        .await
        .unwrap()
        .is_empty());
}

/// Eight workers claim 500 no-op jobs: every job runs to completion exactly once.
pub async fn eight_workers_run_every_job_exactly_once(catalog: DynCatalog) {
    const JOBS: usize = 500;
    let mut ids = HashSet::new();
    for _ in 0..JOBS {
        ids.insert(queued_media(&catalog, 3).await.id.as_str().to_owned());
    }
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let catalog = catalog.clone();
        let ran = ran.clone();
        workers.push(tokio::spawn(async move {
            while let Some(job) = catalog.claim_job(&format!("w{w}"), LONG).await.unwrap() {
                let id = MediaId::parse(&job.subject).unwrap();
                assert!(catalog.heartbeat(&job.lease, LONG).await.unwrap());
                assert!(catalog
                    .complete_media(
                        &job.lease,
                        &id,
                        &output(&id, &format!("r{}", job.lease.token))
                    )
                    .await
                    .unwrap());
                ran.lock().unwrap().push((job.subject, job.lease));
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let ran = ran.lock().unwrap().clone();
    assert_eq!(ran.len(), JOBS, "every job ran once");
    let subjects: HashSet<String> = ran.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(subjects, ids, "and no job twice");
    let leases: HashSet<&Lease> = ran.iter().map(|(_, l)| l).collect();
    assert_eq!(leases.len(), JOBS);
    let counts = catalog.job_counts().await.unwrap();
    assert_eq!(counts, vec![("done".to_string(), JOBS as u64)]);
}

pub async fn media_list_is_newest_first_with_a_cursor(catalog: DynCatalog) {
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(queued_media(&catalog, 3).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    made.reverse();
    let first = catalog.list_media(3, None).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        made[..3].iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );
    let cursor =
        catalog::MediaCursor::decode(&catalog::MediaCursor::after(&first[2]).encode()).unwrap();
    let rest = catalog.list_media(3, Some(&cursor)).await.unwrap();
    assert_eq!(
        rest.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        made[3..].iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );
}

/// PostgreSQL tells every node's workers when any node queues a job (LISTEN/NOTIFY), so they
/// start at once instead of at their next poll.
#[tokio::test]
async fn postgres_announces_queued_jobs_to_other_nodes() {
    let (options, _) = crate::common::postgres::fresh_schema().await;
    let worker_node: DynCatalog = Arc::new(
        reelay::catalog::PostgresCatalog::open_with(options.clone())
            .await
            .unwrap(),
    );
    let api_node: DynCatalog = Arc::new(
        reelay::catalog::PostgresCatalog::open_with(options)
            .await
            .unwrap(),
    );
    let wakeup = Arc::new(tokio::sync::Notify::new());
    worker_node.watch_queue(wakeup.clone());
    // Give the listener a moment to subscribe; a notification before that is simply missed
    // (the worker would find the job at its next poll).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), wakeup.notified()).await;
    assert!(quiet.is_err(), "no job queued yet, no wake-up");

    queued_media(&api_node, 3).await;
    tokio::time::timeout(Duration::from_secs(5), wakeup.notified())
        .await
        .expect("the worker node is told about the new job");
}
