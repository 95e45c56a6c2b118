//! The client and admin subcommands, run as an operator would.

use std::{path::Path, process::Output};

use crate::{
    common::pattern,
    harness::{client, reelay, Server},
};

/// Runs `reelay args...` in `cwd` and returns stdout; panics unless it succeeds.
fn run(cwd: &Path, args: &[&str]) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = reelay()
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("reelay runs");
    let stdout = String::from_utf8(stdout).expect("utf-8 stdout");
    assert!(
        status.success(),
        "reelay {args:?}: {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

#[test]
fn help_describes_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let top = run(dir.path(), &["--help"]);
    for subcommand in ["serve", "upload", "keys"] {
        assert!(top.contains(subcommand), "{top}");
    }
    let serve = run(dir.path(), &["serve", "--help"]);
    for setting in ["REELAY_DATA_DIR", "REELAY_LISTEN", "REELAY_ADMIN_KEY"] {
        assert!(serve.contains(setting), "no {setting} in:\n{serve}");
    }
    let keys = run(dir.path(), &["keys", "create", "--help"]);
    assert!(keys.contains("REELAY_DATA_DIR"), "{keys}");
}

#[tokio::test]
async fn keys_and_uploads_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = cwd.join("data");
    let data = data.to_str().unwrap();

    let created = run(
        cwd,
        &[
            "keys",
            "create",
            "--data-dir",
            data,
            "--scope",
            "files:read,files:write",
            "--name",
            "ci",
        ],
    );
    let key = created.trim();
    assert_eq!(
        created.lines().count(),
        1,
        "stdout is the key alone: {created:?}"
    );
    assert!(key.starts_with("rly.key_"), "{key}");
    let (id, secret) = key["rly.".len()..]
        .split_once('.')
        .expect("rly.<id>.<secret>");

    let listed = run(cwd, &["keys", "list", "--data-dir", data]);
    let row = listed
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
    assert!(row.contains("files:read,files:write"), "{row}");
    assert!(row.contains("active") && row.contains("ci"), "{row}");
    assert!(!listed.contains(secret), "the secret is listed:\n{listed}");

    let server = Server::start(cwd).await;
    let http = client();
    let bytes = pattern(77, 3 * 1024 * 1024 + 5);
    let file = cwd.join("report.bin");
    std::fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();

    let public = run(
        cwd,
        &[
            "upload",
            file,
            "--public",
            "--server",
            &server.base,
            "--key",
            key,
        ],
    );
    let public = public.trim();
    assert!(public.starts_with(&server.url("/files/fil_")), "{public}");
    let served = http.get(public).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert!(
        served.bytes().await.unwrap() == bytes,
        "public bytes differ"
    );

    let signed = run(
        cwd,
        &["upload", file, "--server", &server.base, "--key", key],
    );
    let signed = signed.trim();
    assert!(signed.contains("sig="), "{signed}");
    let served = http.get(signed).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert!(
        served.bytes().await.unwrap() == bytes,
        "signed bytes differ"
    );
    let unsigned = signed.split('?').next().unwrap();
    assert_eq!(http.get(unsigned).send().await.unwrap().status(), 403);

    let with_key = || http.get(server.url("/v1/files")).bearer_auth(key).send();
    let files: serde_json::Value = with_key().await.unwrap().json().await.unwrap();
    assert_eq!(files["items"].as_array().map(Vec::len), Some(2), "{files}");

    run(cwd, &["keys", "revoke", id, "--data-dir", data]);
    assert_eq!(with_key().await.unwrap().status(), 401);
    let listed = run(cwd, &["keys", "list", "--data-dir", data]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(id) && l.contains("revoked")),
        "{listed}"
    );
}

/// `reelay upload --resumable`: killed partway, the same command continues from the server's
/// offset (it says so) and the file ends with the source's bytes.
#[tokio::test]
async fn resumable_upload_continues_after_the_client_is_killed() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let source = dir.path().join("big.bin");
    let data = pattern(51, 96 * 1024 * 1024);
    std::fs::write(&source, &data).unwrap();
    let state_dir = dir.path().join("state");
    let command = || {
        let mut c = reelay();
        c.current_dir(dir.path())
            .args([
                "upload",
                "--resumable",
                "--chunk-size",
                "1048576",
                "--public",
            ])
            .arg("--server")
            .arg(&server.base)
            .arg("--key")
            .arg(crate::common::ADMIN_KEY)
            .arg("--state-dir")
            .arg(&state_dir)
            .arg(&source);
        c
    };
    let mut first = command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the server holds part of the upload.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = 0u64;
    while std::time::Instant::now() < deadline {
        let url = std::fs::read_dir(&state_dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path()).ok());
        if let Some(url) = url {
            let r = client()
                .head(url.trim())
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            seen = r.headers()["upload-offset"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            if seen >= 8 * 1024 * 1024 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        seen > 0 && seen < data.len() as u64,
        "offset {seen}: the kill came too late or too early"
    );

    let Output {
        status,
        stdout,
        stderr,
    } = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming"),
        "the second run started over:\n{stderr}"
    );
    let url = String::from_utf8(stdout).unwrap().trim().to_owned();
    let served = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&served)),
        hex::encode(Sha256::digest(&data))
    );
    // Finished: nothing left to resume.
    assert_eq!(std::fs::read_dir(&state_dir).unwrap().count(), 0);
}
