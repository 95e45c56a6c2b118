//! Case 1: every input, good or hostile, ends `ready` or `failed` within a bound; failures say
//! why in words that leak nothing; the worker keeps working; and nothing outside the job's
//! temp dir is ever read (DESIGN.md "Hostile input").

use std::time::Duration;

use crate::{
    corpus::{corpus, expected_ready},
    inputs::{Expect, Hostile},
    support::{client, contains, expect_error, get_ok, media_files, rfc3339},
};

fn table(corpus: &crate::corpus::Corpus) -> String {
    corpus
        .runs
        .iter()
        .map(|(name, run)| {
            format!(
                "  {name:<15} expected {:?}, got {} ({}) error={} history={:?}",
                run.input.expect,
                run.media()["state"],
                if run.followed.terminal {
                    "ended"
                } else {
                    "STILL RUNNING"
                },
                run.media()["error"],
                run.followed.history
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn every_input_ends_ready_or_failed_as_expected() {
    let corpus = corpus().await;
    let wrong: Vec<&str> = corpus
        .runs
        .iter()
        .filter(|(_, run)| {
            let want = match run.input.expect {
                Expect::Ready => "ready",
                Expect::Failed => "failed",
            };
            !run.followed.terminal || run.media()["state"] != want
        })
        .map(|(name, _)| *name)
        .collect();
    assert!(
        wrong.is_empty(),
        "inputs that did not end as expected: {wrong:?}\n{}",
        table(&corpus)
    );
    // Shown with --nocapture: what each input became.
    for (name, run) in &corpus.runs {
        let sizes: Vec<String> = run.media()["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}:{}x{}@{}",
                    r["kind"], r["width"], r["height"], r["bandwidth"]
                )
            })
            .collect();
        println!("{name:<15} {} {} {sizes:?}", run.id(), run.media()["state"]);
    }
    println!("{}", table(&corpus));
}

#[tokio::test]
async fn an_upload_with_transcode_answers_the_file_and_a_queued_media() {
    let corpus = corpus().await;
    for (name, run) in &corpus.runs {
        let file = &run.file;
        let media = &run.created;
        assert!(file["id"].as_str().unwrap().starts_with("fil_"), "{file}");
        assert_eq!(file["access"], run.input.access, "{name}: {file}");
        assert_eq!(media["file_id"], file["id"], "{name}: {media}");
        let id = media["id"].as_str().unwrap();
        assert!(
            id.starts_with("med_") && id.len() == 24,
            "{name}: media id {id}"
        );
        assert_eq!(media["state"], "queued", "{name}: {media}");
        assert_eq!(media["progress"], 0, "{name}: {media}");
        assert_eq!(media["access"], run.input.access, "{name}: {media}");
        assert!(media["error"].is_null(), "{name}: {media}");
        assert_eq!(media["renditions"], serde_json::json!([]), "{name}");
        for url in ["hls_url", "dash_url", "poster_url"] {
            assert!(
                media[url].is_null(),
                "{name}: no {url} before ready: {media}"
            );
        }
        rfc3339(&media["created_at"]);
    }
}

#[tokio::test]
async fn progress_only_rises_and_is_100_when_ready() {
    let corpus = corpus().await;
    for (name, run) in &corpus.runs {
        let history = &run.followed.history;
        let order = |state: &str| match state {
            "queued" => 0,
            "processing" => 1,
            _ => 2,
        };
        for pair in history.windows(2) {
            let ((s0, p0), (s1, p1)) = (&pair[0], &pair[1]);
            assert!(
                order(s0) <= order(s1),
                "{name}: state went back from {s0} to {s1}: {history:?}"
            );
            if s1 != "failed" {
                assert!(p0 <= p1, "{name}: progress went down: {history:?}");
            }
        }
        for (state, progress) in history {
            assert!(*progress <= 100, "{name}: {history:?}");
            if state != "ready" {
                assert!(*progress < 100, "{name}: 100 only when ready: {history:?}");
            }
        }
        if run.is_ready() {
            assert_eq!(run.media()["progress"], 100, "{name}: {}", run.media());
        }
    }
}

#[tokio::test]
async fn failed_media_say_why_in_plain_words_that_leak_nothing() {
    let corpus = corpus().await;
    let client = client();
    let data_dir = corpus.data_dir.display().to_string();
    let secret_dir = corpus.hostile.dir.path().display().to_string();
    for (name, run) in corpus.runs.iter().filter(|(_, r)| !expected_ready(r)) {
        let media = run.media();
        if media["state"] != "failed" {
            continue; // reported by every_input_ends_ready_or_failed_as_expected
        }
        let error = media["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: a failed media without an error: {media}"));
        let reason = error.to_ascii_lowercase();
        assert!(!error.trim().is_empty(), "{name}: empty error");
        assert!(
            error.len() <= 200,
            "{name}: not a short sentence: {error:?}"
        );
        assert!(!error.contains('\n'), "{name}: several lines: {error:?}");
        for leak in [
            "/",
            "\\",
            data_dir.as_str(),
            secret_dir.as_str(),
            "tmp",
            "job-",
            "file:",
            "0x",
            " @ ",
            "stderr",
            "panicked",
        ] {
            assert!(
                !error.contains(leak),
                "{name}: the error shows internals ({leak:?}): {error:?}"
            );
        }
        assert!(
            !contains(error.as_bytes(), &corpus.hostile.secret),
            "{name}: the error carries the secret"
        );
        // The uploader's fault, so the reason must not read as ours or as temporary.
        assert!(
            !reason.contains("internal") && !reason.contains("retry"),
            "{name}: {error:?}"
        );
        let expected_words: &[&str] = match *name {
            "empty" => &["empty"],
            "text" => &["not a", "recogni", "support", "format"],
            "hls_playlist" => &["playlist"],
            "truncated" => &["truncated", "damaged", "incomplete"],
            _ => &[],
        };
        assert!(
            expected_words.is_empty() || expected_words.iter().any(|w| reason.contains(w)),
            "{name}: the reason does not say what is wrong: {error:?}"
        );

        assert!(media["renditions"].as_array().unwrap().is_empty(), "{name}");
        for url in ["hls_url", "dash_url", "poster_url"] {
            assert!(media[url].is_null(), "{name}: {url} on a failed media");
        }
        for path in ["master.m3u8", "manifest.mpd", "poster.jpg"] {
            let response = client
                .get(corpus.url(&format!("/media/{}/{path}", run.id())))
                .send()
                .await
                .unwrap();
            expect_error(response, 404).await;
        }
    }
}

#[tokio::test]
async fn the_worker_survives_every_bad_input() {
    let corpus = corpus().await;
    let survivor = corpus.run("survivor");
    let failed_before = corpus
        .runs
        .values()
        .filter(|r| r.media()["state"] == "failed")
        .count();
    assert!(
        failed_before >= 4,
        "the bad inputs failed:\n{}",
        table(&corpus)
    );
    assert_eq!(
        survivor.media()["state"],
        "ready",
        "a good upload after the bad ones:\n{}",
        table(&corpus)
    );
    // Uploaded last, so the worker took it after every bad one.
    let created = |r: &crate::corpus::Run| rfc3339(&r.created["created_at"]);
    assert!(corpus
        .runs
        .values()
        .all(|r| created(r) <= created(survivor)));
    // Every job cleaned its scratch space.
    assert!(
        corpus.scratch_left.is_empty(),
        "scratch files left behind: {:?}",
        corpus.scratch_left
    );
}

#[tokio::test]
async fn a_playlist_posing_as_mp4_reads_no_local_file_and_no_url() {
    let corpus = corpus().await;
    let run = corpus.run("hls_playlist");
    assert!(run.followed.terminal, "{}", run.media());
    let hostile = &corpus.hostile;
    assert_eq!(
        hostile.canary.connections(),
        0,
        "ffmpeg or ffprobe connected to a URL named in an upload"
    );
    assert!(
        !hostile.pipe.opened(),
        "a file outside the job's temp dir was opened"
    );
    let holding: Vec<&String> = corpus
        .stored
        .iter()
        .filter(|(_, has)| *has)
        .map(|(key, _)| key)
        .collect();
    assert!(
        holding.is_empty(),
        "stored objects hold the secret: {holding:?}"
    );
    assert!(
        !corpus.stored.is_empty(),
        "the storage scan saw nothing; it cannot have looked"
    );
}

#[tokio::test]
async fn no_delivered_file_of_any_ready_media_holds_the_secret() {
    let corpus = corpus().await;
    let client = client();
    let mut checked = 0;
    for run in corpus.ready() {
        let media = run.media();
        let signed = signed_query(&corpus, run).await;
        let base = corpus.url(&format!("/media/{}/", run.id()));
        let files = if let Some(query) = &signed {
            // A private media's manifests are fetched signed; the file names are the same.
            let mut signed_media = media.clone();
            signed_media["hls_url"] = format!("{base}master.m3u8?{query}").into();
            signed_media["dash_url"] = format!("{base}manifest.mpd?{query}").into();
            strip_queries(media_files(&client, &signed_media).await)
        } else {
            media_files(&client, media).await
        };
        assert!(files.len() >= 5, "{}: {files:?}", run.input.name);
        for path in files {
            let url = match &signed {
                Some(query) => format!("{base}{path}?{query}"),
                None => format!("{base}{path}"),
            };
            let body = get_ok(&client, &url).await;
            assert!(
                !contains(&body, &corpus.hostile.secret),
                "{url} holds the secret"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} files checked");
}

/// A signature for a private run; None for a public one.
pub async fn signed_query(
    corpus: &crate::corpus::Corpus,
    run: &crate::corpus::Run,
) -> Option<String> {
    if run.media()["access"] != "private" {
        return None;
    }
    let response = client()
        .post(corpus.url(&format!("/v1/media/{}/signed-url", run.id())))
        .bearer_auth(crate::common::ADMIN_KEY)
        .json(&serde_json::json!({ "expires_in": 600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let signed: serde_json::Value = response.json().await.unwrap();
    let url = signed["url"].as_str().unwrap();
    Some(url.split_once('?').unwrap().1.to_owned())
}

fn strip_queries(files: std::collections::BTreeSet<String>) -> std::collections::BTreeSet<String> {
    files
        .into_iter()
        .map(|f| f.split('?').next().unwrap().to_owned())
        .collect()
}

/// The canaries must be able to fail: a permissive ffmpeg given the same kind of playlist
/// opens the pipe and connects to the listener.
#[tokio::test]
async fn the_canaries_notice_a_demuxer_that_follows_the_playlist() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = Hostile::new(dir.path());
    let run = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "quiet",
            "-protocol_whitelist",
            "file,http,tcp",
        ])
        .args(["-f", "hls", "-i"])
        .arg(&hostile.playlist)
        .args(["-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    for _ in 0..50 {
        if hostile.pipe.opened() && hostile.canary.connections() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hostile.pipe.opened(), "the pipe canary missed a reader");
    assert!(
        hostile.canary.connections() > 0,
        "the network canary missed a connection"
    );
}
