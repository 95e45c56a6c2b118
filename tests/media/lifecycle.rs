//! Case 5: deleting a media stops its delivery at once and removes its outputs; the list is
//! newest first with keyset pagination.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::{
    common::TestApp,
    corpus::create_media,
    playback::load_hls,
    support::{client, expect_error, get_ok, resolve, rfc3339, wait_ready},
};

async fn tiny_clip(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("tiny.mp4");
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30:duration=1")
        .args(["-f", "lavfi", "-i", "sine=duration=1"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&path)
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn deleting_a_media_stops_delivery_and_removes_its_outputs() {
    let app = TestApp::spawn_with(|config| {
        config.worker.segment_seconds = 2.0;
        config.worker.job_poll_secs = 1;
    })
    .await;
    let client = client();
    let dir = tempfile::tempdir().unwrap();
    let file = app
        .upload(tiny_clip(dir.path()).await, "tiny.mp4", "public")
        .await;
    let file_id = file["id"].as_str().unwrap();
    let created = create_media(&app, file_id, None).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let media = wait_ready(&client, &app.base, &id).await;

    // Served, and cached by the delivery path, before the delete.
    let master_url = media["hls_url"].as_str().unwrap().to_owned();
    let hls = load_hls(&client, &master_url).await;
    let playlist = &hls.playlists[0];
    let urls = vec![
        master_url.clone(),
        media["dash_url"].as_str().unwrap().to_owned(),
        media["poster_url"].as_str().unwrap().to_owned(),
        playlist.url.clone(),
        resolve(&playlist.url, &playlist.playlist.map),
        resolve(&playlist.url, &playlist.playlist.segments[0].1),
    ];
    for url in &urls {
        get_ok(&client, url).await;
    }
    assert!(
        app.stored()
            .await
            .iter()
            .any(|k| k.contains(&format!("media/{id}/"))),
        "the outputs are in storage before the delete"
    );

    let deleted = app
        .api(Method::DELETE, &format!("/v1/media/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.unwrap().is_empty());

    for url in &urls {
        let response = client.get(url).send().await.unwrap();
        let (_, code) = expect_error(response, 404).await;
        assert_eq!(code, "not_found", "{url}");
    }
    let shown = app
        .api(Method::GET, &format!("/v1/media/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(shown, 404).await;
    let again = app
        .api(Method::DELETE, &format!("/v1/media/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(again, 404).await;
    let sign = app
        .api(Method::POST, &format!("/v1/media/{id}/signed-url"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    expect_error(sign, 404).await;
    let left: Vec<String> = app
        .stored()
        .await
        .into_iter()
        .filter(|k| k.contains(&id))
        .collect();
    assert!(left.is_empty(), "outputs left after the delete: {left:?}");
    let listed = app.api(Method::GET, "/v1/media").send().await.unwrap();
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["items"], serde_json::json!([]));

    // The source file is the app's, not the media's: it stays.
    let source = app
        .api(Method::GET, &format!("/v1/files/{file_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(source.status(), 200);
    assert!(app.stored().await.iter().any(|k| k.contains(file_id)));
    app.stop().await;
}

async fn page(app: &TestApp, query: &str) -> Value {
    let response = app
        .api(Method::GET, &format!("/v1/media{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    assert_eq!(
        response.headers().get("cache-control").unwrap(),
        "no-store",
        "API answers are never stored"
    );
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_media_list_is_newest_first_with_cursor_pagination() {
    let app = TestApp::spawn_with(|config| config.worker.workers = 0).await;
    let file = app.upload("placeholder", "v.mp4", "private").await;
    let file_id = file["id"].as_str().unwrap();
    let mut created = Vec::new();
    for _ in 0..5 {
        let media = create_media(&app, file_id, None).await;
        assert_eq!(
            media["access"], "private",
            "a media takes its file's access by default"
        );
        created.push(media["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let all = page(&app, "").await;
    assert_eq!(ids(&all), newest_first);
    assert!(all["next_cursor"].is_null());

    let first = page(&app, "?limit=2").await;
    assert_eq!(ids(&first), newest_first[..2]);
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();

    // A media made between pages is not seen on later pages and shifts nothing.
    let late = create_media(&app, file_id, None).await;
    let second = page(&app, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), newest_first[2..4]);
    let cursor = second["next_cursor"].as_str().expect("a cursor").to_owned();
    let third = page(&app, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&third), newest_first[4..]);
    assert!(third["next_cursor"].is_null(), "{third}");

    let everything = page(&app, "?limit=1000").await;
    let listed = ids(&everything);
    assert_eq!(listed[0], late["id"].as_str().unwrap(), "the newest first");
    assert_eq!(listed.iter().collect::<BTreeSet<_>>().len(), 6);
    let times: Vec<time::OffsetDateTime> = everything["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| rfc3339(&m["created_at"]))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=two",
        "?cursor=not-a-cursor",
        "?cursor=",
    ] {
        let response = app
            .api(Method::GET, &format!("/v1/media{bad}"))
            .send()
            .await
            .unwrap();
        let (_, code) = expect_error(response, 400).await;
        assert!(!code.is_empty(), "{bad}");
    }
    // A cursor of the files list is not a cursor of the media list.
    app.upload("another", "w.mp4", "private").await;
    let files_page = app
        .api(Method::GET, "/v1/files?limit=1")
        .send()
        .await
        .unwrap();
    let files_page: Value = files_page.json().await.unwrap();
    let files_cursor = files_page["next_cursor"].as_str().expect("a files cursor");
    let response = app
        .api(Method::GET, &format!("/v1/media?cursor={files_cursor}"))
        .send()
        .await
        .unwrap();
    let (_, code) = expect_error(response, 400).await;
    assert_eq!(code, "invalid_cursor");
    app.stop().await;
}
