//! One server shared by the input, playback, delivery and signing tests: every input of
//! `inputs` is uploaded once (`POST /v1/files?transcode=true`, plus one `POST /v1/media`) and
//! followed until it is ready or failed. Transcoding is the slow part and one worker does it
//! one job at a time, so doing it once for the whole binary keeps the suite short.
//!
//! Each `#[tokio::test]` has its own runtime, and a server spawned on one dies with it; the
//! shared server therefore lives on a runtime of its own, on a thread that lasts as long as
//! the test process. Tests talk to it over HTTP with their own clients.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::{
    common::{files_under, TestApp},
    inputs::{self, Expect, Hostile, Input},
    support::{contains, follow_media, Followed},
};

/// How long the whole corpus may take to transcode, one job after another.
const CORPUS_BOUND: Duration = Duration::from_secs(420);

/// Segment length the corpus server is configured with.
pub const SEGMENT_SECONDS: f64 = 2.0;

/// One upload and what became of its media.
#[derive(Debug)]
pub struct Run {
    pub input: Input,
    /// The file JSON of the upload (without `media`).
    pub file: Value,
    /// The media JSON as first answered (upload answer or `POST /v1/media`).
    pub created: Value,
    pub followed: Followed,
}

impl Run {
    pub fn id(&self) -> &str {
        self.created["id"].as_str().expect("media id")
    }

    pub fn media(&self) -> &Value {
        &self.followed.last
    }

    pub fn is_ready(&self) -> bool {
        self.media()["state"] == "ready"
    }
}

pub struct Corpus {
    pub base: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// By input name; `private_again` is a second media of the `private` upload.
    pub runs: BTreeMap<&'static str, Run>,
    pub hostile: Hostile,
    /// Every object in storage after all jobs ended, and whether it holds the secret.
    pub stored: Vec<(String, bool)>,
    /// What is left in the worker's scratch dir after all jobs ended.
    pub scratch_left: Vec<String>,
    _inputs_dir: tempfile::TempDir,
}

impl Corpus {
    pub fn run(&self, name: &str) -> &Run {
        self.runs
            .get(name)
            .unwrap_or_else(|| panic!("no input named {name}"))
    }

    pub fn ready(&self) -> impl Iterator<Item = &Run> {
        self.runs.values().filter(|r| r.is_ready())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A ready run by name; panics (naming its state and error) if it is not ready.
    pub fn ready_run(&self, name: &str) -> &Run {
        let run = self.run(name);
        assert!(
            run.is_ready(),
            "{name} is not ready, so this test cannot run: {}",
            run.media()
        );
        run
    }
}

static CORPUS: tokio::sync::OnceCell<Result<Arc<Corpus>, String>> =
    tokio::sync::OnceCell::const_new();

/// The shared corpus, built by the first test that asks and awaited by the others.
pub async fn corpus() -> Arc<Corpus> {
    let built = CORPUS
        .get_or_init(|| async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("media-corpus".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("runtime");
                    runtime.block_on(async move {
                        let app = TestApp::spawn_with(|config| {
                            config.worker.segment_seconds = SEGMENT_SECONDS;
                            config.worker.job_poll_secs = 1;
                        })
                        .await;
                        remove_at_exit(app.data_dir.path().to_owned());
                        let app = Arc::new(app);
                        let built = tokio::spawn(build(app.clone())).await;
                        let _ = tx.send(built.map(Arc::new).map_err(panic_message));
                        // The server lives until the test process exits.
                        std::future::pending::<()>().await;
                    });
                })
                .expect("corpus thread");
            rx.await
                .unwrap_or_else(|_| Err("the corpus thread ended without an answer".into()))
        })
        .await;
    match built {
        Ok(corpus) => corpus.clone(),
        Err(e) => panic!("the shared media corpus could not be built: {e}"),
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into()),
        Err(e) => e.to_string(),
    }
}

async fn build(app: Arc<TestApp>) -> Corpus {
    let inputs_dir = tempfile::tempdir().expect("temp dir");
    remove_at_exit(inputs_dir.path().to_owned());
    let hostile = Hostile::new(inputs_dir.path());
    remove_at_exit(hostile.dir.path().to_owned());
    let inputs = inputs::generate(inputs_dir.path(), &hostile).await;

    // Every upload first, in order (the worker takes the oldest job first), then the waits.
    let mut created: Vec<(&'static str, Input, Value, Value)> = Vec::new();
    for input in inputs {
        let (file, media) = upload_for_transcode(&app, &input).await;
        if input.name == "private" {
            // A second private media of the same file, made through `POST /v1/media`.
            let again = create_media(&app, file["id"].as_str().unwrap(), Some("private")).await;
            created.push(("private", input.clone(), file.clone(), media));
            created.push(("private_again", input, file, again));
        } else {
            created.push((input.name, input, file, media));
        }
    }
    let mut runs = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + CORPUS_BOUND;
    for (name, input, file, media) in created {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let id = media["id"].as_str().expect("media id").to_owned();
        let followed = follow_media(
            &app.client,
            &app.base,
            &id,
            left.max(Duration::from_secs(1)),
        )
        .await;
        runs.insert(
            name,
            Run {
                input,
                file,
                created: media,
                followed,
            },
        );
    }

    let stored = scan_storage(&app, &hostile.secret).await;
    let scratch = app.data_dir.path().join("work");
    let scratch_left = files_under(&scratch)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    Corpus {
        base: app.base.clone(),
        addr: app.addr,
        data_dir: app.data_dir.path().to_owned(),
        runs,
        hostile,
        stored,
        scratch_left,
        _inputs_dir: inputs_dir,
    }
}

/// `POST /v1/files?transcode=true`: the answer is the file JSON with the queued media in
/// `media`. Returns both, separated.
async fn upload_for_transcode(app: &TestApp, input: &Input) -> (Value, Value) {
    let body = std::fs::read(&input.path).expect("input readable");
    let response = app
        .api(reqwest::Method::POST, "/v1/files")
        .query(&[
            ("filename", input.filename),
            ("access", input.access),
            ("transcode", "true"),
        ])
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let status = response.status();
    let mut file: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 201, "uploading {}: {file}", input.name);
    let media = file
        .as_object_mut()
        .and_then(|o| o.remove("media"))
        .unwrap_or_else(|| panic!("no `media` in the answer to ?transcode=true: {file}"));
    (file, media)
}

/// `POST /v1/media`; panics unless it answers 202 with a Location naming the media.
pub async fn create_media(app: &TestApp, file_id: &str, access: Option<&str>) -> Value {
    let mut request = json!({ "file_id": file_id });
    if let Some(access) = access {
        request["access"] = json!(access);
    }
    let response = app
        .api(reqwest::Method::POST, "/v1/media")
        .json(&request)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let media: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 202, "POST /v1/media: {media}");
    let id = media["id"].as_str().expect("media id");
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/media/{id}").as_str())
    );
    media
}

/// Every object the app's storage holds, and whether its bytes contain `secret`.
async fn scan_storage(app: &TestApp, secret: &[u8]) -> Vec<(String, bool)> {
    match &app.s3 {
        None => files_under(&app.objects_dir())
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).unwrap_or_default();
                (path.display().to_string(), contains(&bytes, secret))
            })
            .collect(),
        Some(s3) => {
            use reelay::storage::{ObjectKey, Storage};
            let mut out = Vec::new();
            for object in s3.list("").await.expect("S3 list") {
                let key = ObjectKey::from_listing(&object.key).expect("a key of ours");
                let chunks: Vec<bytes::Bytes> = s3
                    .get(&key, None)
                    .await
                    .expect("S3 get")
                    .try_collect()
                    .await
                    .expect("S3 body");
                out.push((object.key.clone(), contains(&chunks.concat(), secret)));
            }
            out
        }
    }
}

static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn remove_registered_dirs() {
    if let Ok(dirs) = AT_EXIT.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The shared server's temp dirs live in a static that is never dropped; libtest ends with
/// `exit`, which runs `atexit` handlers, so they are removed then.
fn remove_at_exit(dir: PathBuf) {
    let mut dirs = AT_EXIT.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a plain function with the C runtime; it only touches a Mutex and
        // the file system, both usable while the process exits.
        unsafe {
            atexit(remove_registered_dirs);
        }
    }
    dirs.push(dir);
}

/// True for inputs the worker must turn into a ready media.
pub fn expected_ready(run: &Run) -> bool {
    run.input.expect == Expect::Ready
}
