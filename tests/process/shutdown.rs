//! SIGTERM: the server stops accepting at once, lets in-flight downloads finish, then exits 0.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use crate::{
    common::{big_body, ADMIN_KEY},
    harness::{client, Server},
};

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn sigterm_lets_an_in_flight_download_finish() {
    const SIZE: u64 = 64 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &[("REELAY_SHUTDOWN_GRACE", "60")], &[]).await;

    let (body, digest) = big_body(SIZE, 9);
    let uploaded = client()
        .post(server.url("/v1/files"))
        .query(&[("filename", "big.bin"), ("access", "public")])
        .bearer_auth(ADMIN_KEY)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let file: serde_json::Value = uploaded.json().await.unwrap();
    assert_eq!(file["sha256"], digest.as_str());

    let mut download = client()
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.content_length(), Some(SIZE));
    let mut reader = SlowReader::default();
    while reader.received < 4 * MIB {
        assert!(reader.read_some(&mut download).await, "ended early");
    }

    server.signal("TERM");
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "new connections are still accepted after SIGTERM");
    assert!(
        client().get(server.url("/healthz")).send().await.is_err(),
        "a new request was answered after SIGTERM"
    );
    assert!(server.is_running(), "the server exited under a download");

    while reader.read_some(&mut download).await {}
    assert_eq!(reader.received, SIZE);
    assert_eq!(hex::encode(reader.hasher.finalize()), digest);

    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", server.log_text());
}

/// Reads a download chunk by chunk, pausing at every MiB so that the server waits on us.
#[derive(Default)]
struct SlowReader {
    received: u64,
    hasher: Sha256,
}

impl SlowReader {
    /// False at the end of the body.
    async fn read_some(&mut self, download: &mut reqwest::Response) -> bool {
        let Some(chunk) = download.chunk().await.expect("the download continues") else {
            return false;
        };
        if (self.received + chunk.len() as u64) / MIB > self.received / MIB {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received += chunk.len() as u64;
        self.hasher.update(&chunk);
        true
    }
}
