//! One tus upload spread over two nodes on PostgreSQL + S3: every PATCH goes to the other node,
//! in 3 MiB chunks (below S3's 5 MiB part minimum, so the pending part object travels between
//! nodes), and the file both nodes then list has exactly the source's bytes.

use reqwest::StatusCode;

use crate::{
    common::{pattern, postgres, seaweed::Seaweed, sha256_hex, ADMIN_KEY},
    harness::{client, Server},
    support::{cluster_env, env_refs, Database},
};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn patches_alternate_between_nodes_and_the_file_is_exact() {
    let weed = Seaweed::start();
    let bucket = weed.bucket().await;
    let database = Database::create(&postgres::server_url()).await;
    let env = cluster_env(&weed, bucket.bucket(), &database.url);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let node_dir = dir.path().join(name);
        std::fs::create_dir_all(&node_dir).unwrap();
        nodes.push(Server::start_with(&node_dir, &env_refs(&env), &["--workers", "0"]).await);
    }
    let size = 20 * MIB + 12345;
    let data = pattern(41, size);
    let created = client()
        .post(nodes[0].url("/v1/uploads"))
        .bearer_auth(ADMIN_KEY)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let path = created.headers()["location"]
        .to_str()
        .unwrap()
        .strip_prefix(&nodes[0].base)
        .unwrap()
        .to_owned();

    let mut offset = 0usize;
    let mut turn = 1;
    let mut last = None;
    while offset < size {
        let node = &nodes[turn % 2];
        // Each node reports the offset the other one saved.
        let head = client()
            .head(node.url(&path))
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.headers()["upload-offset"].to_str().unwrap(),
            offset.to_string()
        );
        let end = (offset + 3 * MIB).min(size);
        let r = client()
            .patch(node.url(&path))
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(data[offset..end].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NO_CONTENT,
            "PATCH at {offset} on node {turn}"
        );
        offset = end;
        turn += 1;
        last = Some(r);
    }
    let last = last.unwrap();
    let file_id = last.headers()["reelay-file-id"]
        .to_str()
        .unwrap()
        .to_owned();
    for node in &nodes {
        let file: serde_json::Value = client()
            .get(node.url(&format!("/v1/files/{file_id}")))
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
    // The pending part objects are gone once the upload completed.
    use reelay::storage::Storage;
    let left = bucket.list("uploads/").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
