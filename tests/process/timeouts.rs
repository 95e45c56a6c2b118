//! Slowloris: a connection that never completes its request head is closed after
//! REELAY_HEADER_TIMEOUT, not held open.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::harness::Server;

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REELAY_HEADER_TIMEOUT", "1")], &[]).await;

    for (what, sent) in [
        ("a silent client", ""),
        (
            "half a request head",
            "GET /healthz HTTP/1.1\r\nHost: x\r\n",
        ),
    ] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(sent.as_bytes()).await.unwrap();
        let started = Instant::now();
        // The server may answer 408 before closing; read until it closes.
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            let mut buf = [0u8; 1024];
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{what}: still connected after 6 s");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(800),
            "{what}: closed after {waited:?}, before the timeout"
        );
    }
}
