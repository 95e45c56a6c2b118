//! `reelay migrate-catalog`: an SQLite catalog filled through the `Catalog` trait, copied into a
//! fresh PostgreSQL schema by the real binary, and read back through `PostgresCatalog`.

use std::{process::Output, time::Duration};

use reelay::{
    catalog::{
        self, Access, ApiKeyRecord, Batch, Catalog, ExportKey, FileRecord, JobRow, Lease,
        MediaFile, MediaOutput, MediaRecord, MediaState, PostgresCatalog, Rendition, Scope,
        SqliteCatalog, Table,
    },
    ids::{FileId, KeyId, MediaId},
};
use tempfile::TempDir;

use crate::common::{postgres::fresh_schema, sha256_hex};

const LONG: Duration = Duration::from_secs(60);

/// An SQLite catalog holding one of everything: files, a live and a revoked key, and media in
/// every state (queued, ready with output files, failed, retrying with backoff, mid-transcode).
struct Source {
    _dir: TempDir,
    url: String,
    catalog: SqliteCatalog,
    files: Vec<FileRecord>,
    keys: Vec<KeyId>,
    queued: MediaId,
    ready: MediaId,
    failed: MediaId,
    retrying: MediaId,
    running: MediaId,
    ready_output: MediaOutput,
    running_lease: Lease,
}

fn new_media(file_id: &FileId, access: Access) -> MediaRecord {
    let now = catalog::now();
    MediaRecord {
        id: MediaId::generate(),
        file_id: file_id.clone(),
        access,
        state: MediaState::Queued,
        progress: 0,
        error: None,
        output_prefix: None,
        renditions: Vec::new(),
        duration: None,
        created_at: now,
        updated_at: now,
    }
}

/// Creates a media and claims its job, which must be the one claimed.
async fn claimed(catalog: &SqliteCatalog, media: &MediaRecord, max_attempts: u32) -> Lease {
    catalog.create_media(media, max_attempts).await.unwrap();
    let job = catalog
        .claim_job("old-worker", LONG)
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(job.subject, media.id.as_str());
    job.lease
}

async fn filled_sqlite() -> Source {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("reelay.db").display());
    let catalog = SqliteCatalog::open(&url).await.expect("sqlite opens");

    let now = catalog::now();
    let files: Vec<FileRecord> = [
        (Some("talk.mp4"), Access::Private, 3600),
        (None, Access::Public, 60),
        (Some("notes.pdf"), Access::Private, 1),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, (filename, access, age))| {
        let id = FileId::generate();
        FileRecord {
            sha256: sha256_hex(id.as_str().as_bytes()),
            id,
            filename: filename.map(Into::into),
            content_type: "video/mp4".into(),
            size: 1_000_000 * (n as u64 + 1),
            access,
            created_at: now - time::Duration::seconds(age),
        }
    })
    .collect();
    for file in &files {
        catalog.insert_file(file).await.unwrap();
    }

    let mut keys = Vec::new();
    for (name, scopes) in [
        ("uploader", vec![Scope::FilesRead, Scope::FilesWrite]),
        ("old admin", vec![Scope::Admin]),
    ] {
        let key = ApiKeyRecord {
            id: KeyId::generate(),
            name: name.into(),
            token_sha256: sha256_hex(name.as_bytes()),
            scopes,
            created_at: catalog::now(),
            revoked_at: None,
        };
        catalog.insert_key(&key).await.unwrap();
        keys.push(key.id);
    }
    assert!(catalog.revoke_key(&keys[1]).await.unwrap());

    let ready = new_media(&files[0].id, Access::Public);
    let lease = claimed(&catalog, &ready, 3).await;
    assert!(catalog.start_media(&lease, &ready.id).await.unwrap());
    let ready_output = MediaOutput {
        prefix: format!("media/{}/r1/", ready.id),
        renditions: vec![
            Rendition {
                kind: "video".into(),
                width: Some(640),
                height: Some(360),
                bandwidth: 800_000,
                codecs: "avc1.64001e".into(),
            },
            Rendition {
                kind: "audio".into(),
                width: None,
                height: None,
                bandwidth: 128_000,
                codecs: "mp4a.40.2".into(),
            },
        ],
        duration: Some(12.345),
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
    };
    assert!(catalog
        .complete_media(&lease, &ready.id, &ready_output)
        .await
        .unwrap());

    let failed = new_media(&files[1].id, Access::Private);
    let lease = claimed(&catalog, &failed, 3).await;
    assert!(catalog
        .fail_job(&lease, "the input has no video stream", false)
        .await
        .unwrap());

    // Queued again with a backoff: its run_after lies ahead and must survive the copy.
    let retrying = new_media(&files[1].id, Access::Public);
    let lease = claimed(&catalog, &retrying, 4).await;
    assert!(catalog
        .fail_job(&lease, "ffmpeg was killed", true)
        .await
        .unwrap());

    let running = new_media(&files[2].id, Access::Private);
    let running_lease = claimed(&catalog, &running, 3).await;
    assert!(catalog
        .start_media(&running_lease, &running.id)
        .await
        .unwrap());
    assert!(catalog
        .media_progress(&running_lease, &running.id, 40)
        .await
        .unwrap());

    let queued = new_media(&files[0].id, Access::Private);
    catalog.create_media(&queued, 5).await.unwrap();

    Source {
        _dir: dir,
        url,
        catalog,
        files,
        keys,
        queued: queued.id,
        ready: ready.id,
        failed: failed.id,
        retrying: retrying.id,
        running: running.id,
        ready_output,
        running_lease,
    }
}

async fn migrate(from: &str, to: &str, force: bool) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelay"));
    command.args(["migrate-catalog", "--from", from, "--to", to]);
    if force {
        command.arg("--force");
    }
    command.output().await.expect("reelay runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The count printed on the line for `table`.
fn printed_count(stdout: &str, table: Table) -> u64 {
    let line = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(table.name()))
        .unwrap_or_else(|| panic!("no line for {} in:\n{stdout}", table.name()));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Every row of `table`, read `limit` at a time, sorted by primary key (engines collate text
/// keys their own way).
async fn export_all(catalog: &dyn Catalog, table: Table, limit: u32) -> Batch {
    let mut all = match table {
        Table::Files => Batch::Files(Vec::new()),
        Table::ApiKeys => Batch::ApiKeys(Vec::new()),
        Table::Media => Batch::Media(Vec::new()),
        Table::MediaFiles => Batch::MediaFiles(Vec::new()),
        Table::Jobs => Batch::Jobs(Vec::new()),
    };
    let mut after: Option<ExportKey> = None;
    loop {
        let page = catalog
            .export_page(table, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.len() <= limit as usize);
        if page.is_empty() {
            break;
        }
        after = page.last_key();
        match (&mut all, page) {
            (Batch::Files(all), Batch::Files(page)) => all.extend(page),
            (Batch::ApiKeys(all), Batch::ApiKeys(page)) => all.extend(page),
            (Batch::Media(all), Batch::Media(page)) => all.extend(page),
            (Batch::MediaFiles(all), Batch::MediaFiles(page)) => all.extend(page),
            (Batch::Jobs(all), Batch::Jobs(page)) => all.extend(page),
            (all, page) => panic!("{:?} page in a {:?} export", page.table(), all.table()),
        }
    }
    match &mut all {
        Batch::Files(rows) => rows.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str())),
        Batch::ApiKeys(rows) => rows.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str())),
        Batch::Media(rows) => rows.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str())),
        Batch::MediaFiles(rows) => rows.sort_by(|a, b| {
            (a.media_id.as_str(), &a.file.path).cmp(&(b.media_id.as_str(), &b.file.path))
        }),
        Batch::Jobs(rows) => rows.sort_by_key(|job| job.id),
    }
    all
}

fn jobs(batch: Batch) -> Vec<JobRow> {
    match batch {
        Batch::Jobs(jobs) => jobs,
        other => panic!("expected jobs, got {:?}", other.table()),
    }
}

/// What PostgreSQL must hold for `table`: the source's rows, with the running job and its
/// media back in the queue.
async fn expected(source: &Source, table: Table) -> Batch {
    let mut rows = export_all(&source.catalog, table, 1000).await;
    match &mut rows {
        Batch::Jobs(jobs) => {
            for job in jobs.iter_mut().filter(|j| j.state == "running") {
                assert_eq!(job.id, source.running_lease.job_id);
                job.state = "queued".into();
                job.lease_owner = None;
                job.lease_expires_at = None;
            }
        }
        Batch::Media(media) => {
            let running = media.iter_mut().find(|m| m.id == source.running).unwrap();
            assert_eq!(
                (running.state, running.progress),
                (MediaState::Processing, 40)
            );
            running.state = MediaState::Queued;
            running.progress = 0;
        }
        _ => {}
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_catalog_copies_every_record_into_postgres() {
    let source = filled_sqlite().await;
    let (options, url) = fresh_schema().await;

    let first = migrate(&source.url, &url, false).await;
    let stdout = text(&first.stdout);
    assert!(
        first.status.success(),
        "migrate-catalog failed:\n{stdout}\n{}",
        text(&first.stderr)
    );
    for (table, n) in [
        (Table::Files, 3),
        (Table::ApiKeys, 2),
        (Table::Media, 5),
        (Table::MediaFiles, 2),
        (Table::Jobs, 5),
    ] {
        assert_eq!(printed_count(&stdout, table), n, "{stdout}");
    }
    let jobs_line = stdout.lines().find(|l| l.starts_with("jobs")).unwrap();
    assert!(
        jobs_line.contains("1 running") && jobs_line.contains("queued again"),
        "{stdout}"
    );
    assert!(stdout.contains("Verified"), "{stdout}");

    let target = PostgresCatalog::open_with(options)
        .await
        .expect("postgres catalog opens");

    for file in &source.files {
        assert_eq!(
            target.get_file(&file.id).await.unwrap().as_ref(),
            Some(file)
        );
    }

    let keys = target.list_keys().await.unwrap();
    assert_eq!(keys, source.catalog.list_keys().await.unwrap());
    assert_eq!(keys.len(), 2);
    let revoked = target.get_key(&source.keys[1]).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    let live = target.get_key(&source.keys[0]).await.unwrap().unwrap();
    assert_eq!(live.revoked_at, None);
    assert_eq!(live.scopes, [Scope::FilesRead, Scope::FilesWrite]);

    for id in [
        &source.queued,
        &source.ready,
        &source.failed,
        &source.retrying,
    ] {
        let copied = target.get_media(id).await.unwrap();
        assert_eq!(copied, source.catalog.get_media(id).await.unwrap());
    }
    let ready = target.get_media(&source.ready).await.unwrap().unwrap();
    assert_eq!(ready.state, MediaState::Ready);
    assert_eq!(ready.renditions, source.ready_output.renditions);
    assert_eq!(ready.duration, source.ready_output.duration);
    assert_eq!(
        ready.output_prefix.as_deref(),
        Some(source.ready_output.prefix.as_str())
    );
    assert_eq!(
        target.media_files(&source.ready).await.unwrap(),
        source.ready_output.files
    );
    let failed = target.get_media(&source.failed).await.unwrap().unwrap();
    assert_eq!(failed.state, MediaState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("the input has no video stream")
    );
    let was_running = source.catalog.get_media(&source.running).await.unwrap();
    let running = target.get_media(&source.running).await.unwrap();
    assert_eq!(
        running,
        was_running.map(|m| MediaRecord {
            state: MediaState::Queued,
            progress: 0,
            ..m
        })
    );

    let mut want_jobs = source.catalog.list_jobs(None, 100).await.unwrap();
    for job in want_jobs
        .iter_mut()
        .filter(|j| j.id == source.running_lease.job_id)
    {
        assert_eq!(job.state, "running");
        job.state = "queued".into();
        job.lease_owner = None;
    }
    assert_eq!(target.list_jobs(None, 100).await.unwrap(), want_jobs);
    assert!(target
        .list_jobs(Some("running"), 100)
        .await
        .unwrap()
        .is_empty());

    // Every column, leases and run_after included, not only what the trait's readers show.
    for table in Table::ALL {
        assert_eq!(
            export_all(&target, table, 1000).await,
            expected(&source, table).await,
            "{table:?}"
        );
    }

    let second = migrate(&source.url, &url, false).await;
    assert!(!second.status.success(), "a second run must refuse");
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );

    let forced = migrate(&source.url, &url, true).await;
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    for table in Table::ALL {
        assert_eq!(
            export_all(&target, table, 1000).await,
            expected(&source, table).await,
            "{table:?} after a forced second copy"
        );
    }

    // The job whose worker was cut off is claimable at once, as its next attempt, with a lease
    // token past the old worker's.
    let job = target
        .claim_job("new-worker", LONG)
        .await
        .unwrap()
        .expect("the requeued job is claimable");
    assert_eq!(job.subject, source.running.as_str());
    assert_eq!(job.lease.job_id, source.running_lease.job_id);
    assert_eq!(job.attempt, 2);
    assert!(job.lease.token > source.running_lease.token);
    assert!(target
        .start_media(&job.lease, &source.running)
        .await
        .unwrap());
    assert!(!target
        .start_media(&source.running_lease, &source.running)
        .await
        .unwrap());

    // New jobs number after the copied ones.
    let max_copied = jobs(export_all(&source.catalog, Table::Jobs, 1000).await)
        .iter()
        .map(|j| j.id)
        .max()
        .unwrap();
    let fresh = new_media(&source.files[0].id, Access::Public);
    target.create_media(&fresh, 3).await.unwrap();
    let fresh_job = jobs(export_all(&target, Table::Jobs, 1000).await)
        .into_iter()
        .find(|j| j.subject == fresh.id.as_str())
        .unwrap();
    assert!(
        fresh_job.id > max_copied,
        "{} <= {max_copied}",
        fresh_job.id
    );

    // PostgreSQL now holds a media the source lacks: the count check must fail.
    let mismatched = migrate(&source.url, &url, true).await;
    assert!(!mismatched.status.success());
    let stderr = text(&mismatched.stderr);
    assert!(
        stderr.contains("media: 5 in SQLite, 6 in PostgreSQL")
            && stderr.contains("jobs: 5 in SQLite, 6 in PostgreSQL"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_export_pages_cover_every_row_once_and_import_is_idempotent() {
    let source = filled_sqlite().await;
    let (options, _) = fresh_schema().await;
    let target = PostgresCatalog::open_with(options)
        .await
        .expect("postgres catalog opens");

    for table in Table::ALL {
        let whole = export_all(&source.catalog, table, 1000).await;
        for limit in [1, 2] {
            assert_eq!(
                export_all(&source.catalog, table, limit).await,
                whole,
                "{table:?} by {limit}"
            );
        }
        let mut after = None;
        loop {
            let page = source
                .catalog
                .export_page(table, after.as_ref(), 2)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last_key();
            target.import(&page).await.unwrap();
            target.import(&page).await.unwrap();
        }
        assert_eq!(
            target.count_rows(table).await.unwrap(),
            source.catalog.count_rows(table).await.unwrap(),
            "{table:?}"
        );
        for limit in [1, 2, 1000] {
            assert_eq!(
                export_all(&target, table, limit).await,
                whole,
                "{table:?} from PostgreSQL by {limit}"
            );
        }
    }

    let wrong = ExportKey::Job(1);
    assert!(source
        .catalog
        .export_page(Table::Files, Some(&wrong), 10)
        .await
        .is_err());
    assert!(target
        .export_page(Table::Media, Some(&wrong), 10)
        .await
        .is_err());
    let files = source
        .catalog
        .export_page(Table::Files, None, 10)
        .await
        .unwrap();
    let refused = source.catalog.import(&files).await.unwrap_err();
    assert!(refused.to_string().contains("not supported"), "{refused}");
}

#[tokio::test]
async fn migrate_catalog_refuses_wrong_engines_and_a_missing_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let sqlite = format!("sqlite://{}", missing.display());
    let postgres = "postgres://nobody@127.0.0.1:1/none";

    let out = migrate(postgres, postgres, false).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--from must be"), "{out:?}");

    let out = migrate(&sqlite, &sqlite, false).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--to must be"), "{out:?}");

    let out = migrate(&sqlite, postgres, false).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("source catalog"), "{out:?}");
    assert!(!missing.exists(), "a missing source is not created");
}
