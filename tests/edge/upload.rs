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

// TODO(tus, issue 9): a tus upload (POST /v1/uploads, then PATCH in several requests, then
// HEAD for the offset) through the nginx edge. To be written with the tus endpoints.
