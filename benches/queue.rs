//! Queue overhead: claim + heartbeat + complete for 2,000 no-op jobs with 4 workers, on
//! PostgreSQL and on SQLite, reported as jobs/s and p99 claim latency.
//! Run: `cargo bench --bench queue` (PostgreSQL from REELAY_TEST_DATABASE_URL, default the
//! machine's own at 127.0.0.1:5432, database `test`; a fresh schema is used and dropped).

use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reelay::{
    catalog::{
        self, Access, DynCatalog, MediaOutput, MediaRecord, MediaState, PostgresCatalog,
        SqliteCatalog,
    },
    ids::{FileId, MediaId},
};
use sqlx::{postgres::PgConnectOptions, Connection};

const JOBS: usize = 2000;
const WORKERS: usize = 4;
const LEASE: Duration = Duration::from_secs(60);

async fn fill(catalog: &DynCatalog) {
    for _ in 0..JOBS {
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
        catalog.create_media(&media, 3).await.unwrap();
    }
}

/// Returns (jobs per second, p99 claim latency).
async fn run(catalog: DynCatalog) -> (f64, Duration) {
    fill(&catalog).await;
    let claims = Arc::new(Mutex::new(Vec::with_capacity(JOBS)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let catalog = catalog.clone();
        let claims = claims.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let t = Instant::now();
                let Some(job) = catalog
                    .claim_job(&format!("bench-{w}"), LEASE)
                    .await
                    .unwrap()
                else {
                    break;
                };
                claims.lock().unwrap().push(t.elapsed());
                let id = MediaId::parse(&job.subject).unwrap();
                assert!(catalog.heartbeat(&job.lease, LEASE).await.unwrap());
                let output = MediaOutput {
                    prefix: format!("media/{id}/r{}/", job.lease.token),
                    renditions: Vec::new(),
                    duration: None,
                    files: Vec::new(),
                };
                assert!(catalog
                    .complete_media(&job.lease, &id, &output)
                    .await
                    .unwrap());
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let mut claims = claims.lock().unwrap().clone();
    assert_eq!(claims.len(), JOBS, "every job ran once");
    claims.sort();
    let p99 = claims[(claims.len() * 99) / 100];
    (JOBS as f64 / elapsed.as_secs_f64(), p99)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: DynCatalog = Arc::new(
        SqliteCatalog::open(&format!("sqlite://{}", dir.path().join("q.db").display()))
            .await
            .unwrap(),
    );

    let url = std::env::var("REELAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", std::process::id());
    let options = PgConnectOptions::from_str(&url).unwrap();
    let mut admin = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let postgres: DynCatalog = Arc::new(
        PostgresCatalog::open_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap(),
    );

    println!("| engine | jobs/s (claim + heartbeat + complete, {WORKERS} workers, {JOBS} jobs) | p99 claim latency |");
    println!("| --- | --- | --- |");
    for (name, catalog) in [("PostgreSQL", postgres), ("SQLite", sqlite)] {
        let (rate, p99) = run(catalog).await;
        println!(
            "| {name} | {rate:.0} | {:.1} ms |",
            p99.as_secs_f64() * 1000.0
        );
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
