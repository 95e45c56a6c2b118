//! Uploads through the nginx edge: streamed to Reelay as they arrive (`proxy_request_buffering
//! off`), with no size cap at the edge (Reelay enforces its own).

use serde_json::Value;

use crate::{
    common::{big_body, files_under, pattern, ADMIN_KEY},
    support::{Kind, Stack},
};

const GIB: u64 = 1 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_raw_upload_streams_through_the_nginx_edge() {
    let stack = Stack::start(Kind::Nginx).await;
    let (body, sha256) = big_body(GIB, 11);
    let response = stack
        .client
        .post(stack.edge.url("/v1/files?filename=big.bin&access=public"))
        .bearer_auth(ADMIN_KEY)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("upload sent");
    let status = response.status();
    let file: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["size"], GIB);
    assert_eq!(file["sha256"], sha256);
    let spooled = files_under(&stack.edge.dir.path().join("cache/client_body"));
    assert!(spooled.is_empty(), "nginx spooled the body: {spooled:?}");

    // Its last bytes come back through the edge (one cold slice).
    let id = file["id"].as_str().unwrap();
    let tail = stack
        .get_with(&format!("/files/{id}"), &[("range", "bytes=-1000")])
        .await;
    assert_eq!(tail.status, 206, "{}", tail.text());
    let chunk = pattern(11, 1 << 20);
    assert!(
        tail.body == chunk[chunk.len() - 1000..],
        "the file's last bytes"
    );
}

/// A tus upload through the nginx edge: creation, PATCHes in several requests and HEADs for
/// the offset all pass through uncached (a cached HEAD would resume from a stale offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tus_upload_goes_through_the_nginx_edge() {
    let stack = Stack::start(Kind::Nginx).await;
    let size = 9 * (1 << 20) + 777;
    let data = pattern(12, size);
    let created = stack
        .client
        .post(stack.edge.url("/v1/uploads"))
        .bearer_auth(ADMIN_KEY)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size.to_string())
        .header("Upload-Metadata", "filename dHVzLmJpbg==,access cHVibGlj")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Reelay names its own public URL; an operator sets REELAY_PUBLIC_URL to the edge's.
    let location = created.headers()["location"].to_str().unwrap();
    let path = &location[location.find("/v1/uploads/").expect("an upload URL")..];
    let head = || async {
        let r = stack
            .client
            .head(stack.edge.url(path))
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let mut offset = head().await;
    assert_eq!(offset, 0);
    let mut last = None;
    while offset < size {
        let end = (offset + 3 * (1 << 20)).min(size);
        let r = stack
            .client
            .patch(stack.edge.url(path))
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(data[offset..end].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "PATCH at {offset}");
        offset = head().await;
        assert_eq!(offset, end, "HEAD through the edge reports the new offset");
        last = Some(r);
    }
    let file_id = last.unwrap().headers()["reelay-file-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let file = stack.api_json(&format!("/v1/files/{file_id}")).await;
    assert_eq!(file["size"], size);
    assert_eq!(file["sha256"], crate::common::sha256_hex(&data));
    assert!(stack.get_ok(&format!("/files/{file_id}")).await == data);
}
