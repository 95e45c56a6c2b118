//! docker/ cannot be run here (no container engine), so what can be checked without one is:
//! every file the Dockerfiles copy and the compose file mounts or builds from exists, every
//! `REELAY_*` variable named in docker/ and cdn-config/ is one the code reads, every `EDGE_*`
//! one is one render.sh reads, and the commands compose runs parse with the real binary.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    crate::common::files_under(dir)
}

/// Words of `text` that start with `prefix` and go on in [A-Z0-9_] (`REELAY_*` is no name).
fn names(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let whole = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if whole && end > prefix.len() {
            found.insert(tail[..end].to_owned());
        }
        rest = &tail[end.max(1)..];
    }
    found
}

#[test]
fn every_file_the_dockerfiles_copy_exists() {
    for dockerfile in ["docker/Dockerfile", "docker/edge.Dockerfile"] {
        let text = read(&repo().join(dockerfile));
        let mut copies = 0;
        for line in text.lines().map(str::trim) {
            let Some(args) = line.strip_prefix("COPY ") else {
                continue;
            };
            // A COPY --from copies out of another stage, not from the build context.
            if args.starts_with("--from=") {
                continue;
            }
            let words: Vec<&str> = args.split_whitespace().collect();
            for source in &words[..words.len() - 1] {
                copies += 1;
                assert!(
                    repo().join(source).exists(),
                    "{dockerfile} copies {source}, which does not exist"
                );
            }
        }
        assert!(copies > 0, "{dockerfile} copies something");
    }
}

#[test]
fn every_file_the_compose_file_builds_from_or_mounts_exists() {
    let compose = read(&repo().join("docker/compose.yaml"));
    let mut checked = 0;
    for line in compose.lines().map(str::trim) {
        // Builds run with context `..`, the repository root.
        if let Some(file) = line.strip_prefix("dockerfile: ") {
            assert!(repo().join(file).exists(), "compose builds from {file}");
            checked += 1;
        }
        if let Some(mount) = line.strip_prefix("- ./") {
            let file = mount.split(':').next().unwrap();
            assert!(
                repo().join("docker").join(file).exists(),
                "compose mounts {file}"
            );
            checked += 1;
        }
        if let Some(context) = line.strip_prefix("context: ") {
            assert_eq!(context, "..", "builds start from the repository root");
        }
    }
    assert!(
        checked >= 3,
        "the builds and the SeaweedFS config were found"
    );
}

#[test]
fn every_reelay_variable_in_docker_and_cdn_config_is_one_the_code_reads() {
    let config = read(&repo().join("src/config.rs"));
    let known = names(&config, "REELAY_");
    assert!(known.contains("REELAY_PURGE_URLS"), "{known:?}");
    let mut used = BTreeSet::new();
    for dir in ["docker", "cdn-config"] {
        for file in files(&repo().join(dir)) {
            for name in names(&read(&file), "REELAY_") {
                used.insert((name, file.display().to_string()));
            }
        }
    }
    assert!(used.len() > 10, "{used:?}");
    let unknown: Vec<_> = used
        .iter()
        .filter(|(name, _)| !known.contains(name))
        .collect();
    assert!(unknown.is_empty(), "not read by src/config.rs: {unknown:?}");
}

#[test]
fn every_edge_variable_in_docker_is_one_render_sh_reads() {
    let render = read(&repo().join("cdn-config/render.sh"));
    let known = names(&render, "EDGE_");
    for file in files(&repo().join("docker")) {
        for name in names(&read(&file), "EDGE_") {
            assert!(
                known.contains(&name),
                "{} sets {name}, which render.sh does not read",
                file.display()
            );
        }
    }
}

#[test]
fn the_commands_compose_runs_parse() {
    let compose = read(&repo().join("docker/compose.yaml"));
    let mut parsed = 0;
    for line in compose.lines().map(str::trim) {
        let Some(list) = line.strip_prefix("command: [") else {
            continue;
        };
        // A flow sequence of double-quoted strings is a JSON array.
        let args: Vec<String> = serde_json::from_str(&format!("[{list}")).expect("JSON array");
        if !matches!(args[0].as_str(), "serve" | "worker") {
            continue;
        }
        let output = crate::harness::reelay()
            .args(&args)
            .arg("--help")
            .output()
            .expect("reelay runs");
        assert!(
            output.status.success(),
            "reelay {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        parsed += 1;
    }
    assert_eq!(parsed, 3, "two API nodes and a worker");
}

#[test]
fn names_finds_whole_variable_names_only() {
    let text = "A REELAY_X=1 ${REELAY_Y_2:-3} XREELAY_Z REELAY_";
    let found: Vec<String> = names(text, "REELAY_").into_iter().collect();
    assert_eq!(found, vec!["REELAY_X", "REELAY_Y_2"]);
}
