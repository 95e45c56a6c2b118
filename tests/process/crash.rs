//! A crash mid-upload (SIGKILL: no destructor, no cleanup) must leave no visible file, and the
//! sweeper of the next process removes the half-written bytes.

use std::time::Duration;

use serde_json::Value;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::{
    common::{files_under, pattern, ADMIN_KEY},
    harness::{client, eventually, is_temp, Server},
};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn kill_9_mid_upload_leaves_nothing_visible_and_the_sweeper_clears_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let files_dir = server.objects_dir().join("files");

    // A raw upload that announces 512 MiB and trickles in the first 20.
    let mut upload = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/files?filename=big.bin&access=public HTTP/1.1\r\n\
         Host: {}\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        server.addr,
        512 * MIB
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    let chunk = pattern(7, MIB);
    for _ in 0..20 {
        upload.write_all(&chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writing = eventually(Duration::from_secs(20), || {
        files_under(&files_dir)
            .iter()
            .any(|p| is_temp(p) && p.metadata().is_ok_and(|m| m.len() >= 8 * MIB as u64))
    })
    .await;
    assert!(
        writing,
        "the upload never reached the disk: {:?}",
        files_under(&files_dir)
    );

    server.kill_9();
    drop(upload);
    let left = files_under(&files_dir);
    assert!(
        left.iter().all(|p| is_temp(p)),
        "a killed upload left a visible object: {left:?}"
    );
    assert!(!left.is_empty(), "the temp file should survive SIGKILL");

    let server = Server::start_with(
        dir.path(),
        &[("REELAY_SWEEP_GRACE", "0"), ("REELAY_SWEEP_INTERVAL", "1")],
        &[],
    )
    .await;
    let listing: Value = client()
        .get(server.url("/v1/files"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["items"], Value::Array(vec![]), "{listing}");
    assert!(files_under(&files_dir).iter().all(|p| is_temp(p)));

    let swept = eventually(Duration::from_secs(10), || {
        files_under(&server.objects_dir()).is_empty()
    })
    .await;
    assert!(
        swept,
        "left after sweeping: {:?}\nlog:\n{}",
        files_under(&server.objects_dir()),
        server.log_text()
    );
}
