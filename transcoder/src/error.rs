//! One error type for the crate. `Display` carries the detail for logs; [`TranscodeError::reason`]
//! is the short sentence a user may see (STYLE.md item 6: never hand a root cause to a client).

/// Why probing or transcoding failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// ffmpeg or ffprobe is not installed where we looked. An operator problem, not the user's.
    #[error("{0}")]
    NotFound(String),
    /// The input is not media we accept: not a media container, an allow-listed container with no
    /// audio or video, an empty file. The message is written for the uploader.
    #[error("unsupported input: {0}")]
    Unsupported(String),
    /// The input is media, but bigger than [`crate::Limits`] allow (dimensions, duration, streams,
    /// output size). The message names the limit.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The run took longer than [`crate::Limits::timeout`]; ffmpeg was killed.
    #[error("ffmpeg timed out")]
    Timeout,
    /// ffmpeg or ffprobe ran and failed, or produced output we do not trust. Carries the last
    /// stderr lines for the log.
    #[error("ffmpeg failed: {0}")]
    Failed(String),
    /// The caller passed options that cannot work (a programming or configuration error, such
    /// as `segment_seconds <= 0` or an empty ladder).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Reading the input or writing the output directory failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl TranscodeError {
    /// A sentence suited to show the uploader (media JSON `error`). Internal details (paths,
    /// ffmpeg's stderr) stay in `Display` for the log.
    pub fn reason(&self) -> String {
        match self {
            TranscodeError::Unsupported(msg) | TranscodeError::LimitExceeded(msg) => msg.clone(),
            TranscodeError::Timeout => "processing took too long and was stopped".to_string(),
            TranscodeError::Failed(detail) if looks_corrupt(detail) => {
                "the file appears to be damaged or truncated".to_string()
            }
            TranscodeError::Failed(_) => "the media could not be processed".to_string(),
            TranscodeError::NotFound(_)
            | TranscodeError::InvalidOptions(_)
            | TranscodeError::Io(_) => "internal error while processing the media".to_string(),
        }
    }

    /// Whether running the same job again could succeed. Failures caused by the input itself
    /// (unsupported, over a limit, ffmpeg rejecting it, too slow) repeat deterministically, so a
    /// job queue should fail them at once instead of burning its attempts.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TranscodeError::Io(_) | TranscodeError::NotFound(_))
    }
}

/// The markers ffmpeg prints when the bytes, not the tool, are at fault.
fn looks_corrupt(detail: &str) -> bool {
    const MARKERS: [&str; 5] = [
        "truncated",
        "partial file",
        "Invalid data found",
        "moov atom not found",
        "corrupt",
    ];
    MARKERS.iter().any(|m| detail.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_hide_internal_details() {
        let err = TranscodeError::Failed("/tmp/job-1/in: something odd at 0x1234".into());
        assert_eq!(err.reason(), "the media could not be processed");
        let err = TranscodeError::NotFound("ffmpeg not found on PATH".into());
        assert!(!err.reason().contains("PATH"));
    }

    #[test]
    fn corrupt_input_reads_as_damaged() {
        let err = TranscodeError::Failed("stream 0, offset 0x2e5038: partial file".into());
        assert_eq!(err.reason(), "the file appears to be damaged or truncated");
    }

    #[test]
    fn user_facing_variants_pass_their_message_through() {
        let err = TranscodeError::Unsupported("the file is empty".into());
        assert_eq!(err.reason(), "the file is empty");
        assert!(!err.is_retryable());
        assert!(TranscodeError::Io(std::io::Error::other("disk")).is_retryable());
    }
}
