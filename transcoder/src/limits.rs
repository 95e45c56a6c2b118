//! Resource limits for one job. Every number here bounds something a hostile upload could
//! otherwise inflate: decoder memory (pixels), run time (duration, timeout), output size.

use std::time::Duration;

/// Bounds checked after probing (dimensions, duration, streams) and enforced while ffmpeg runs
/// (`-max_pixels`, `-t`, output bytes, timeout).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Widest display width accepted (after non-square pixels and before rotation).
    pub max_width: u32,
    /// Tallest display height accepted.
    pub max_height: u32,
    /// Largest frame in pixels; also passed to the decoders as `-max_pixels`, so a header that
    /// lies about the size still cannot make a decoder allocate more.
    pub max_pixels: u64,
    /// Longest media accepted; also `-t` on the encode, in case the container understates it.
    pub max_duration: Duration,
    /// Most streams a file may declare.
    pub max_streams: usize,
    /// Most bytes the output directory may hold; ffmpeg is stopped when it grows past this.
    pub max_output_bytes: u64,
    /// Wall-clock bound on the whole transcode (encode and poster).
    pub timeout: Duration,
    /// Wall-clock bound on one ffprobe run (which only reads headers and a few frames).
    pub probe_timeout: Duration,
    /// Threads for decoding, filtering and each encoder (`-threads`, `-filter_complex_threads`).
    pub threads: u32,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Limits {
            max_width: 8192,
            max_height: 8192,
            max_pixels: 8192 * 8192,
            max_duration: Duration::from_secs(6 * 3600),
            max_streams: 16,
            max_output_bytes: 20 << 30,
            timeout: Duration::from_secs(2 * 3600),
            probe_timeout: Duration::from_secs(60),
            threads: cores.clamp(1, 16) as u32,
        }
    }
}
