//! Where the ffmpeg and ffprobe binaries are. The crate never reads `REELAY_FFMPEG` itself (all
//! configuration lives in the service's `config`); it only offers the PATH lookup as a default.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::TranscodeError;

/// The two binaries every call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

const NOT_FOUND_HINT: &str = "install it (Debian: apt-get install ffmpeg) or set REELAY_FFMPEG";

impl Tools {
    /// ffmpeg at `ffmpeg`, ffprobe beside it (same directory), as both ship together.
    pub fn new(ffmpeg: PathBuf) -> Tools {
        let ffprobe = match ffmpeg.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("ffprobe"),
            _ => PathBuf::from("ffprobe"),
        };
        Tools { ffmpeg, ffprobe }
    }

    /// Finds `ffmpeg` and `ffprobe` on the process's `PATH`.
    pub fn from_path_env() -> Result<Tools, TranscodeError> {
        Tools::from_path_var(&std::env::var_os("PATH").unwrap_or_default())
    }

    /// Finds `ffmpeg` and `ffprobe` in the directories of a `PATH`-style value.
    pub fn from_path_var(path_var: &OsStr) -> Result<Tools, TranscodeError> {
        let find = |name: &str| {
            std::env::split_paths(path_var)
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable(candidate))
                .ok_or_else(|| {
                    TranscodeError::NotFound(format!("{name} not found on PATH; {NOT_FOUND_HINT}"))
                })
        };
        Ok(Tools {
            ffmpeg: find("ffmpeg")?,
            ffprobe: find("ffprobe")?,
        })
    }

    /// Runs both binaries once and checks that ffmpeg has the encoders the pipeline uses
    /// (libx264, aac). Meant for a worker's start-up check, so a missing package is reported
    /// before the first job fails. Returns ffmpeg's version line.
    pub async fn verify(&self) -> Result<String, TranscodeError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let probe_version =
            run_quick(&self.ffprobe, &["-hide_banner", "-version"], deadline).await?;
        if !probe_version.starts_with("ffprobe version") {
            return Err(TranscodeError::NotFound(format!(
                "{} does not look like ffprobe; {NOT_FOUND_HINT}",
                self.ffprobe.display()
            )));
        }
        let version = run_quick(&self.ffmpeg, &["-hide_banner", "-version"], deadline).await?;
        let encoders = run_quick(&self.ffmpeg, &["-hide_banner", "-encoders"], deadline).await?;
        for needed in ["libx264", "aac"] {
            if !encoders.split_whitespace().any(|word| word == needed) {
                return Err(TranscodeError::NotFound(format!(
                    "{} has no {needed} encoder; {NOT_FOUND_HINT}",
                    self.ffmpeg.display()
                )));
            }
        }
        Ok(version.lines().next().unwrap_or_default().to_string())
    }
}

async fn run_quick(
    program: &Path,
    args: &[&str],
    deadline: tokio::time::Instant,
) -> Result<String, TranscodeError> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = crate::run::spawn(&mut command, program)?;
    let output = tokio::time::timeout_at(deadline, child.wait_with_output())
        .await
        .map_err(|_| TranscodeError::Timeout)??;
    if !output.status.success() {
        return Err(TranscodeError::Failed(format!(
            "{} {} exited with {}",
            program.display(),
            args.join(" "),
            output.status
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_is_derived_beside_ffmpeg() {
        let tools = Tools::new(PathBuf::from("/opt/ffmpeg/bin/ffmpeg"));
        assert_eq!(tools.ffprobe, PathBuf::from("/opt/ffmpeg/bin/ffprobe"));
        let bare = Tools::new(PathBuf::from("ffmpeg"));
        assert_eq!(bare.ffprobe, PathBuf::from("ffprobe"));
    }

    #[test]
    fn missing_ffmpeg_says_what_to_do() {
        let err = Tools::from_path_var(OsStr::new("/nonexistent-dir")).unwrap_err();
        assert!(matches!(err, TranscodeError::NotFound(_)));
        assert_eq!(
            err.to_string(),
            "ffmpeg not found on PATH; install it (Debian: apt-get install ffmpeg) or set REELAY_FFMPEG"
        );
    }
}
