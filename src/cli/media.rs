//! `reelay media wait ID`: follows a media with a progress bar until it is ready or failed.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Secret;

#[derive(Debug, Args)]
pub struct MediaArgs {
    /// Base URL of the server.
    #[arg(
        long,
        env = "REELAY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// API key with media:read (REELAY_ADMIN_KEY works too).
    #[arg(long, env = "REELAY_API_KEY", hide_env_values = true, global = true)]
    pub key: Option<Secret>,
    #[command(subcommand)]
    pub action: MediaAction,
}

#[derive(Debug, Subcommand)]
pub enum MediaAction {
    /// Wait until the media is ready (exit 0, prints its HLS URL) or failed (exit 1).
    Wait {
        id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
}

#[derive(serde::Deserialize)]
struct Media {
    state: String,
    progress: u8,
    error: Option<String>,
    hls_url: Option<String>,
}

pub async fn run(args: MediaArgs) -> anyhow::Result<()> {
    let key = args
        .key
        .or_else(|| std::env::var("REELAY_ADMIN_KEY").ok().map(Secret))
        .context("an API key is needed: --key or REELAY_API_KEY")?;
    let MediaAction::Wait { id, timeout } = args.action;
    let server = args.server.trim_end_matches('/');
    let client = reqwest::Client::new();
    let bar = ProgressBar::new(100).with_style(
        ProgressStyle::with_template("{bar:40} {pos:>3}% {msg}").expect("valid template"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let response = client
            .get(format!("{server}/v1/media/{id}"))
            .bearer_auth(&key.0)
            .send()
            .await
            .with_context(|| format!("asking {server}"))?;
        if !response.status().is_success() {
            let status = response.status();
            anyhow::bail!(
                "server answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        let media: Media = response.json().await?;
        bar.set_position(media.progress as u64);
        bar.set_message(media.state.clone());
        match media.state.as_str() {
            "ready" => {
                bar.finish_and_clear();
                eprintln!("{id} is ready");
                println!("{}", media.hls_url.unwrap_or_default());
                return Ok(());
            }
            "failed" => {
                bar.finish_and_clear();
                anyhow::bail!("{id} failed: {}", media.error.unwrap_or_default());
            }
            _ => {}
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {id}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
