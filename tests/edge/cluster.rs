//! Two Reelay nodes on one PostgreSQL and one SeaweedFS bucket behind nginx: one is killed,
//! and downloads (cached and not) and API calls, uploads included, keep succeeding through the
//! edge (passive health checks, `proxy_next_upstream`).

use serde_json::Value;

use crate::{
    cluster_support::{cluster_env, env_refs, Database},
    common::{pattern, postgres, seaweed::Seaweed, ADMIN_KEY},
    harness::{free_port, Server},
    support::{Edge, Kind},
};

async fn upload(client: &reqwest::Client, edge: &Edge, body: Vec<u8>) -> String {
    let response = client
        .post(edge.url("/v1/files?filename=a.bin&access=public"))
        .bearer_auth(ADMIN_KEY)
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let status = response.status();
    let file: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{file}");
    file["id"].as_str().unwrap().to_owned()
}

async fn download(client: &reqwest::Client, edge: &Edge, id: &str) -> Vec<u8> {
    let response = client
        .get(edge.url(&format!("/files/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET /files/{id}");
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_keeps_serving_when_one_of_two_nodes_dies() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Seaweed::start();
    let bucket = weed.bucket().await;
    let database = Database::create(&postgres::server_url()).await;
    let env = cluster_env(&weed, bucket.bucket(), &database.url);
    let mut nodes = Vec::new();
    for name in ["node1", "node2"] {
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        nodes.push(Server::start_with(&dir, &env_refs(&env), &["--workers", "0"]).await);
    }
    let edge = Edge::start(Kind::Nginx, free_port(), &[nodes[0].addr, nodes[1].addr]).await;
    let client = reqwest::Client::new();

    let cached = pattern(21, 200_000);
    let cached_id = upload(&client, &edge, cached.clone()).await;
    assert!(download(&client, &edge, &cached_id).await == cached);

    nodes[0].kill_9();

    for n in 0..10u64 {
        let body = pattern(100 + n, 50_000);
        let id = upload(&client, &edge, body.clone()).await;
        let response = client
            .get(edge.url(&format!("/v1/files/{id}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "API call {n}");
        assert!(download(&client, &edge, &id).await == body, "download {n}");
        assert!(download(&client, &edge, &cached_id).await == cached);
    }
}
