//! Request bodies as byte streams with the server's limits applied while they flow: a size
//! cap, an idle timeout and a minimum average rate. Nothing here buffers a body.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::body::Body;
use futures::StreamExt;

use crate::{error::BodyError, storage::ByteStream};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub idle: Duration,
    /// Bytes per second averaged over `RATE_WINDOW`; 0 disables the check.
    pub min_rate: u64,
}

const RATE_WINDOW: Duration = Duration::from_secs(30);

struct Flow {
    inner: axum::body::BodyDataStream,
    limits: BodyLimits,
    received: u64,
    window_start: Instant,
    window_bytes: u64,
    failed: bool,
}

/// The body as a stream that fails with a `BodyError` (inside io::Error) when a limit is hit.
pub fn limited(body: Body, limits: BodyLimits) -> ByteStream {
    let flow = Flow {
        inner: body.into_data_stream(),
        limits,
        received: 0,
        window_start: Instant::now(),
        window_bytes: 0,
        failed: false,
    };
    futures::stream::unfold(flow, |mut flow| async move {
        if flow.failed {
            return None;
        }
        let result = match tokio::time::timeout(flow.limits.idle, flow.inner.next()).await {
            Err(_) => Err(BodyError::Idle),
            Ok(None) => return None,
            Ok(Some(Err(e))) => Err(BodyError::Disconnected(e.to_string())),
            Ok(Some(Ok(chunk))) => flow.account(chunk.len() as u64).map(|()| chunk),
        };
        flow.failed = result.is_err();
        Some((result.map_err(BodyError::into_io), flow))
    })
    .fuse()
    .boxed()
}

impl Flow {
    fn account(&mut self, n: u64) -> Result<(), BodyError> {
        self.received += n;
        metrics::counter!("reelay_uploaded_bytes_total").increment(n);
        if self.received > self.limits.max_bytes {
            return Err(BodyError::TooLarge(self.limits.max_bytes));
        }
        self.window_bytes += n;
        let elapsed = self.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            if self.window_bytes < self.limits.min_rate * elapsed.as_secs() {
                return Err(BodyError::Idle);
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(())
    }
}

/// Caps how many bytes may pass while a multipart parser looks for the end of a part's
/// headers: the parser buffers headers whole, so without this a huge header is held in memory.
#[derive(Clone, Default)]
pub struct HeaderBudget {
    consumed: Arc<AtomicU64>,
    limit: Arc<AtomicU64>,
}

impl HeaderBudget {
    pub const PER_PART: u64 = 64 * 1024;

    /// From now on, at most `PER_PART` more bytes may arrive.
    pub fn open(&self) {
        let now = self.consumed.load(Ordering::Acquire);
        self.limit.store(now + Self::PER_PART, Ordering::Release);
    }

    /// A part's data is flowing; its own size limits apply.
    pub fn close(&self) {
        self.limit.store(u64::MAX, Ordering::Release);
    }

    pub fn wrap(&self, stream: ByteStream) -> ByteStream {
        let budget = self.clone();
        budget.open();
        stream
            .map(move |chunk| {
                let chunk = chunk?;
                // A chunk may hold the header's end and file data after it, so only a parser
                // that asks for more after a whole budget without finding the end is refused:
                // at most PER_PART plus one chunk is buffered.
                let before = budget
                    .consumed
                    .fetch_add(chunk.len() as u64, Ordering::AcqRel);
                if before >= budget.limit.load(Ordering::Acquire) {
                    return Err(BodyError::Malformed(format!(
                        "a multipart part header exceeds {} bytes",
                        Self::PER_PART
                    ))
                    .into_io());
                }
                Ok(chunk)
            })
            .boxed()
    }
}
