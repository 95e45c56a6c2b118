//! `reelay upload FILE`: streams a file to a running server with a progress bar and prints its
//! delivery URL (a signed one for a private file).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::io::ReaderStream;

use crate::config::Secret;

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The file to upload.
    pub file: PathBuf,
    /// Serve the file without a signature.
    #[arg(long)]
    pub public: bool,
    /// Base URL of the server.
    #[arg(long, env = "REELAY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key with files:write (REELAY_ADMIN_KEY works too).
    #[arg(long, env = "REELAY_API_KEY", hide_env_values = true)]
    pub key: Option<Secret>,
    /// Upload with tus in chunks; an interrupted upload (network, Ctrl-C, crash) continues
    /// from the server's offset when the same command runs again.
    #[arg(long)]
    pub resumable: bool,
    /// Bytes per PATCH for --resumable.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub chunk_size: u64,
    /// Where --resumable remembers unfinished uploads (default: the user's cache directory).
    #[arg(long, env = "REELAY_UPLOAD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct Uploaded {
    id: String,
    url: String,
    size: u64,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct Signed {
    url: String,
}

pub(super) async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::bail!("server answered {status}: {body}")
}

pub async fn run(args: UploadArgs) -> anyhow::Result<()> {
    let key = args
        .key
        .or_else(|| std::env::var("REELAY_ADMIN_KEY").ok().map(Secret))
        .context("an API key is needed: --key or REELAY_API_KEY")?;
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let content_type = mime_guess::from_path(&args.file)
        .first_or_octet_stream()
        .to_string();

    let server = args.server.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let access = if args.public { "public" } else { "private" };
    let uploaded: Uploaded = if args.resumable {
        let upload = super::resumable::Upload {
            client: &client,
            server: &server,
            key: &key.0,
            path: &args.file,
            size,
            name: &name,
            content_type: &content_type,
            access,
            chunk_size: args.chunk_size.max(1),
            state_dir: args.state_dir.clone(),
        };
        let file_id = upload.run(&bar).await?;
        let response = client
            .get(format!("{server}/v1/files/{file_id}"))
            .bearer_auth(&key.0)
            .send()
            .await?;
        check(response).await?.json().await?
    } else {
        let progress = bar.clone();
        let body = ReaderStream::with_capacity(file, 256 * 1024)
            .inspect_ok(move |chunk| progress.inc(chunk.len() as u64));
        let response = client
            .post(format!("{server}/v1/files"))
            .query(&[("filename", name.as_str()), ("access", access)])
            .bearer_auth(&key.0)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .with_context(|| format!("sending to {server}"))?;
        check(response).await?.json().await?
    };
    bar.finish_and_clear();
    eprintln!(
        "uploaded {} ({} bytes, sha256 {})",
        uploaded.id, uploaded.size, uploaded.sha256
    );
    if args.public {
        println!("{}", uploaded.url);
    } else {
        let response = client
            .post(format!("{server}/v1/files/{}/signed-url", uploaded.id))
            .bearer_auth(&key.0)
            .json(&serde_json::json!({ "expires_in": 86400 }))
            .send()
            .await?;
        let signed: Signed = check(response).await?.json().await?;
        eprintln!("private file; this signed URL works for 24 hours:");
        println!("{}", signed.url);
    }
    Ok(())
}
