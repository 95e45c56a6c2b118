use crate::common::{sha256_hex, TestApp};

#[tokio::test]
async fn a_public_upload_is_served_back() {
    let app = TestApp::spawn().await;
    let file = app.upload("hello world", "hello.txt", "public").await;
    assert_eq!(file["size"], 11);
    assert_eq!(file["sha256"], sha256_hex(b"hello world"));
    let response = app
        .client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello world");
    app.stop().await;
}
