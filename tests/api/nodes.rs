//! Two API nodes on one catalog: the in-process metadata cache of a node that did not serve a
//! delete forgets the file within REELAY_METADATA_CACHE_TTL.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::common::{on_s3, TestApp};

#[tokio::test]
async fn a_delete_through_one_node_stops_the_other_within_the_cache_ttl() {
    if on_s3() {
        return; // the second node shares the first one's data dir, which is fs-only
    }
    let a = TestApp::spawn_with(|c| c.metadata_cache_ttl_secs = 1).await;
    let shared = a.data_dir.path().to_owned();
    let b = TestApp::spawn_with(|c| {
        c.store.data_dir = shared.clone();
        c.metadata_cache_ttl_secs = 1;
    })
    .await;
    let file = a.upload("on both nodes", "n.txt", "public").await;
    let on_b = b.url(&format!("/files/{}", file["id"].as_str().unwrap()));
    // HEAD is answered from the cached record alone, with no storage call: the cache shows.
    assert_eq!(b.client.head(&on_b).send().await.unwrap().status(), 200);

    let deleted = a
        .api(
            Method::DELETE,
            &format!("/v1/files/{}", file["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let started = Instant::now();
    loop {
        let status = b.client.head(&on_b).send().await.unwrap().status();
        if status == 404 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "node B still serves a deleted file after the 1 s cache TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await;
    b.stop().await;
}
