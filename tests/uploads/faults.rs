//! Connections cut mid-PATCH: the server keeps what arrived (never more), HEAD reports an
//! offset no larger than the bytes that reached it, and the upload resumes to the exact bytes.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    common::{pattern, sha256_hex, TestApp},
    support::*,
};

/// Sends a PATCH announcing the whole rest, writes only `data[offset..cut]`, and drops the
/// connection.
async fn cut_patch(app: &TestApp, url: &str, offset: u64, data: &[u8], cut: usize) {
    let path = url.strip_prefix(&app.base).expect("same server");
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n\
         Content-Length: {}\r\n\r\n",
        app.addr,
        data.len() as u64 - offset
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&data[offset as usize..cut]).await.unwrap();
    socket.flush().await.unwrap();
    // Give the server a moment to take the bytes before the cut.
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(socket);
}

/// The offset once the cut request has ended on the server (it saves what arrived as it
/// ends): an empty PATCH at the reported offset succeeds only when no request holds the
/// upload and the offset is current.
async fn settled_offset(app: &TestApp, url: &str) -> u64 {
    for _ in 0..200 {
        let offset = offset_of(&head(app, url).await);
        let probe = patch(app, url, offset, Vec::new()).await;
        match probe.status() {
            StatusCode::NO_CONTENT => return offset,
            StatusCode::LOCKED | StatusCode::CONFLICT => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("probe PATCH answered {other}"),
        }
    }
    panic!("the upload never settled");
}

#[tokio::test]
async fn thirty_cuts_at_random_offsets_then_resume() {
    let app = TestApp::spawn().await;
    let size = 3 * 1024 * 1024;
    let data = pattern(21, size);
    let url = create(&app, size as u64, &[("filename", "cut.bin")]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e57);
    let mut offset = 0u64;
    for round in 0..30 {
        let remaining = size as u64 - offset;
        if remaining < 2 {
            break;
        }
        let cut = offset as usize + rng.gen_range(1..remaining as usize);
        cut_patch(&app, &url, offset, &data, cut).await;
        let reported = settled_offset(&app, &url).await;
        assert!(
            reported <= cut as u64,
            "round {round}: offset {reported} is past the {cut} bytes sent"
        );
        assert!(
            reported >= offset,
            "round {round}: offset went back from {offset} to {reported}"
        );
        offset = reported;
    }
    let r = finish(&app, &url, &data).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let file = file_json(&app, header(&r, "reelay-file-id").unwrap()).await;
    assert_eq!(file["size"], size);
    assert_eq!(file["sha256"], sha256_hex(&data));
    // And the bytes served are the source's.
    let signed = app
        .signed_url(file["id"].as_str().unwrap(), serde_json::json!({}))
        .await;
    let served = app.client.get(&signed).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        sha256_hex(&served.bytes().await.unwrap()),
        sha256_hex(&data)
    );
}

/// A request that dies after its headers (no byte of body) changes nothing.
#[tokio::test]
async fn a_cut_before_any_byte_changes_nothing() {
    let app = TestApp::spawn().await;
    let data = pattern(22, 1000);
    let url = create(&app, 1000, &[]).await;
    assert_eq!(
        patch(&app, &url, 0, data[..100].to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    cut_patch(&app, &url, 100, &data, 100).await;
    assert_eq!(settled_offset(&app, &url).await, 100);
    // A half-read response is not required: read whatever is there to be sure the server lives.
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
