//! A server SIGKILLed mid-PATCH: after a restart the upload's offset is what had been made
//! durable (never past the bytes sent, and not lost), and the upload completes to the exact
//! bytes.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::{
    common::{pattern, sha256_hex, ADMIN_KEY},
    harness::{client, Server},
};

const MIB: usize = 1024 * 1024;

async fn head_offset(url: &str) -> u64 {
    let r = client()
        .head(url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "HEAD {url}");
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn kill_9_mid_patch_keeps_the_durable_offset_and_the_upload_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let size = 32 * MIB;
    let data = pattern(31, size);
    let created = client()
        .post(server.url("/v1/uploads"))
        .bearer_auth(ADMIN_KEY)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = created.headers()["location"].to_str().unwrap().to_owned();
    let path = url.strip_prefix(&server.base).unwrap().to_owned();

    // One PATCH for everything, trickled: 8 MiB, a pause past the checkpoint interval, one
    // more MiB (which triggers a checkpoint), then the kill while more is on its way.
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n\
         Content-Length: {size}\r\n\r\n",
        server.addr
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&data[..8 * MIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    socket.write_all(&data[8 * MIB..9 * MIB]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    socket.write_all(&data[9 * MIB..10 * MIB]).await.unwrap();
    let sent = 10 * MIB as u64;
    server.kill_9();
    drop(socket);

    let server = Server::start(dir.path()).await;
    let url = server.url(&path);
    let offset = head_offset(&url).await;
    assert!(
        offset >= 8 * MIB as u64,
        "the checkpointed bytes were lost: offset {offset}"
    );
    assert!(
        offset <= sent,
        "offset {offset} is past the {sent} bytes sent"
    );
    // The partial file holds at least the durable bytes (it may hold more, never trusted).
    let partial = std::fs::read_dir(server.data_dir.join("objects/uploads"))
        .unwrap()
        .next()
        .expect("the partial file survived")
        .unwrap();
    assert!(partial.metadata().unwrap().len() >= offset);

    // The dead process's lock expires (an empty PATCH answers 423 until then, 204 after);
    // then the rest goes in and the file is exact.
    let patch = |body: Vec<u8>| {
        client()
            .patch(&url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(body)
            .send()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let probe = patch(Vec::new()).await.unwrap();
        if probe.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(probe.status(), StatusCode::LOCKED);
        assert!(
            std::time::Instant::now() < deadline,
            "the dead node's lock never expired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done = patch(data[offset as usize..].to_vec()).await.unwrap();
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    let file_id = done.headers()["reelay-file-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let file: serde_json::Value = client()
        .get(server.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(file["size"], size);
    assert_eq!(file["sha256"], sha256_hex(&data));
}
