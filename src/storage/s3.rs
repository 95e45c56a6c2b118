//! S3-compatible storage (AWS S3, SeaweedFS, Garage, MinIO, R2) on aws-sdk-s3.
//!
//! Uploads stream: a body smaller than one part goes up with one PutObject; a larger one as a
//! multipart upload whose parts are sent with bounded concurrency, so memory stays at
//! `part_size x (concurrency + 1)` whatever the object's size. An object becomes visible only
//! when PutObject or CompleteMultipartUpload succeeds, so readers never see a partial object.
//! Any failure aborts the multipart upload; an abort that cannot reach S3 is retried in the
//! background until it can, and `cleanup_incomplete` catches what a crash leaves behind.

use std::{
    ops::Range,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::{
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream as S3Body,
    types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier},
    Client,
};
use bytes::{Bytes, BytesMut};
use futures::{stream::FuturesUnordered, StreamExt};

use super::{
    resumable, ByteStream, HashState, Hashing, ObjectInfo, ObjectKey, PutOutcome, Resumable,
    Storage, StorageError,
};

/// S3's smallest allowed part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const ABORT_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Custom endpoint (SeaweedFS, MinIO, R2...); None for AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers need.
    pub path_style: bool,
    pub part_size: usize,
    pub concurrency: usize,
    /// (access key id, secret); None uses the AWS credential chain.
    pub credentials: Option<(String, String)>,
}

/// Cheap to clone: the client and the abort list are shared.
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    part_size: usize,
    concurrency: usize,
    /// Multipart uploads whose abort failed (S3 unreachable); retried in the background.
    pending_aborts: Arc<Mutex<Vec<(String, String)>>>,
}

impl S3Storage {
    /// Builds a client from the standard AWS credential chain (AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, profiles, instance roles) and the settings; no request is made.
    pub async fn connect(settings: S3Settings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.part_size >= MIN_PART_SIZE,
            "the S3 part size must be at least {MIN_PART_SIZE} bytes"
        );
        anyhow::ensure!(!settings.bucket.is_empty(), "REELAY_S3_BUCKET is not set");
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()));
        if let Some((id, secret)) = &settings.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id,
                secret,
                None,
                None,
                "reelay-config",
            ));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let storage = Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket,
            part_size: settings.part_size,
            concurrency: settings.concurrency.max(1),
            pending_aborts: Arc::default(),
        };
        storage.spawn_abort_retrier();
        Ok(storage)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn spawn_abort_retrier(&self) {
        let pending = Arc::downgrade(&self.pending_aborts);
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ABORT_RETRY).await;
                let Some(pending) = pending.upgrade() else {
                    return;
                };
                let batch: Vec<_> = std::mem::take(&mut *pending.lock().expect("not poisoned"));
                for (key, upload_id) in batch {
                    if abort(&client, &bucket, &key, &upload_id).await.is_err() {
                        pending.lock().expect("not poisoned").push((key, upload_id));
                    }
                }
            }
        });
    }

    async fn put_single(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(S3Body::from(body))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        first: Bytes,
        body: &mut Hashing<ByteStream>,
    ) -> Result<(), StorageError> {
        let upload_id = self.create_multipart(key).await?;
        let mut guard = AbortGuard {
            storage: self,
            key,
            upload_id: &upload_id,
            armed: true,
        };
        let parts = self.upload_parts(key, &upload_id, first, body).await;
        let parts = match parts {
            Ok(parts) => parts,
            Err(e) => {
                guard.abort_now().await;
                return Err(e);
            }
        };
        let completed = self.complete_multipart(key, &upload_id, parts).await;
        match completed {
            Ok(_) => {
                guard.armed = false;
                Ok(())
            }
            Err(e) => {
                guard.abort_now().await;
                Err(e)
            }
        }
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(created
            .upload_id()
            .context("S3 returned no upload id")
            .map_err(StorageError::Other)?
            .to_owned())
    }

    /// Makes the object visible, whole.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), StorageError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// Reads the body part by part, keeping at most `concurrency` parts in flight.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut Hashing<ByteStream>,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let mut in_flight = FuturesUnordered::new();
        let mut done = Vec::new();
        let mut next: Option<Bytes> = Some(first);
        let mut number = 0i32;
        loop {
            while in_flight.len() < self.concurrency {
                let Some(part) = next.take() else { break };
                number += 1;
                in_flight.push(self.upload_part(key, upload_id, number, part));
                next = read_part(body, self.part_size).await?;
            }
            match in_flight.next().await {
                Some(part) => done.push(part?),
                None => break,
            }
        }
        done.sort_by_key(|p: &CompletedPart| p.part_number());
        Ok(done)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        data: Bytes,
    ) -> Result<CompletedPart, StorageError> {
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(S3Body::from(data))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(uploaded.e_tag().map(str::to_owned))
            .build())
    }
}

/// Reads up to `size` bytes; None at the end of the body.
async fn read_part(
    body: &mut Hashing<ByteStream>,
    size: usize,
) -> Result<Option<Bytes>, StorageError> {
    let mut buffer = BytesMut::with_capacity(size);
    while buffer.len() < size {
        match body.next().await {
            Some(chunk) => buffer.extend_from_slice(&chunk.map_err(StorageError::from_io)?),
            None => break,
        }
    }
    Ok((!buffer.is_empty()).then(|| buffer.freeze()))
}

async fn abort(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), StorageError> {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .map_err(sdk_error)
    {
        Ok(_) | Err(StorageError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Aborts the multipart upload unless disarmed, also when the upload's future is dropped.
struct AbortGuard<'a> {
    storage: &'a S3Storage,
    key: &'a str,
    upload_id: &'a str,
    armed: bool,
}

impl AbortGuard<'_> {
    async fn abort_now(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let s = self.storage;
        if let Err(e) = abort(&s.client, &s.bucket, self.key, self.upload_id).await {
            tracing::warn!(key = self.key, error = %e, "abort failed; retrying in the background");
            self.defer();
        }
    }

    fn defer(&self) {
        self.storage
            .pending_aborts
            .lock()
            .expect("not poisoned")
            .push((self.key.to_owned(), self.upload_id.to_owned()));
    }
}

impl Drop for AbortGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Dropped mid-upload (the request future was cancelled): let the retrier abort it.
            self.defer();
        }
    }
}

fn sdk_error<E>(e: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &e {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            e.raw_response().map(|r| r.status().as_u16())
        }
        _ => None,
    };
    let code = e.code().map(str::to_owned);
    let described = match (status, code.as_deref()) {
        (Some(status), Some(code)) => format!("S3 answered HTTP {status} ({code})"),
        (Some(403), None) => "S3 answered HTTP 403 (AccessDenied)".to_owned(),
        (Some(status), None) => format!("S3 answered HTTP {status}"),
        (None, _) => "S3 could not be reached".to_owned(),
    };
    let cause = anyhow::Error::new(e).context(described);
    match (status, code.as_deref()) {
        (_, Some("NoSuchKey" | "NotFound" | "NoSuchUpload")) | (Some(404), _) => {
            StorageError::NotFound
        }
        (None, _) => StorageError::Unavailable(cause),
        (Some(status), _) if status >= 500 => StorageError::Unavailable(cause),
        _ => StorageError::Other(cause),
    }
}

fn modified(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &ObjectKey, body: ByteStream) -> Result<PutOutcome, StorageError> {
        // Fused: reading part by part asks the body for more after it has ended.
        let mut body = Hashing::new(body.fuse().boxed());
        let first = read_part(&mut body, self.part_size)
            .await?
            .unwrap_or_default();
        if first.len() < self.part_size {
            self.put_single(key.as_str(), first).await?;
        } else {
            self.put_multipart(key.as_str(), first, &mut body).await?;
        }
        Ok(body.finish())
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str());
        if let Some(r) = range {
            request = request.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let output = request.send().await.map_err(sdk_error)?;
        // The SDK's own chunks, passed on as they arrive: no copy through a read buffer.
        Ok(futures::stream::unfold(output.body, |mut body| async move {
            let chunk = body.next().await?;
            Some((chunk.map_err(std::io::Error::other), body))
        })
        .boxed())
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(ObjectInfo {
            key: key.as_str().to_owned(),
            size: output.content_length().unwrap_or_default().max(0) as u64,
            modified: modified(output.last_modified()),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(sdk_error)
        {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let objects = self.list(prefix).await?;
        // DeleteObjects takes at most 1,000 keys per call.
        for batch in objects.chunks(1000) {
            let ids = batch
                .iter()
                .map(|o| ObjectIdentifier::builder().key(&o.key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Other(e.into()))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Other(e.into()))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(sdk_error)?;
            if let Some(error) = output.errors().first() {
                return Err(StorageError::Other(anyhow::anyhow!(
                    "S3 refused to delete {:?}: {:?}",
                    error.key(),
                    error.message()
                )));
            }
        }
        Ok(objects.len() as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk_error)?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    found.push(ObjectInfo {
                        key: key.to_owned(),
                        size: object.size().unwrap_or_default().max(0) as u64,
                        modified: modified(object.last_modified()),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn cleanup_incomplete(
        &self,
        older_than: Duration,
        keep: &std::collections::HashSet<String>,
    ) -> Result<u64, StorageError> {
        let cutoff = SystemTime::now() - older_than;
        let mut removed = 0;
        let mut key_marker: Option<String> = None;
        let mut upload_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_marker.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if modified(upload.initiated()) < cutoff && !keep.contains(key) {
                    abort(&self.client, &self.bucket, key, id).await?;
                    removed += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && upload_marker.is_none() {
                break;
            }
        }
        Ok(removed)
    }

    async fn resume(
        &self,
        key: &ObjectKey,
        upload: &str,
        state: &str,
        offset: u64,
    ) -> Result<Box<dyn Resumable>, StorageError> {
        let saved: S3State = if state.is_empty() {
            S3State {
                upload_id: self.create_multipart(key.as_str()).await?,
                ..S3State::default()
            }
        } else {
            serde_json::from_str(state).map_err(|_| resumable::corrupt("state"))?
        };
        let hash = HashState::restore(&saved.sha256_state)?;
        // The bytes past the last full part wait in a small pending object between requests.
        let mut buffer = BytesMut::new();
        if let Some(pending) = &saved.pending {
            let object = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&pending.key)
                .send()
                .await
                .map_err(sdk_error)?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| StorageError::Unavailable(e.into()))?
                .into_bytes();
            buffer.extend_from_slice(&bytes[..pending.size.min(bytes.len() as u64) as usize]);
        }
        let in_parts: u64 = saved.parts.iter().map(|p| p.size).sum();
        if in_parts + buffer.len() as u64 != offset {
            return Err(StorageError::Other(anyhow::anyhow!(
                "the stored parts hold {} bytes, not the upload's offset {offset}",
                in_parts + buffer.len() as u64
            )));
        }
        let superseded = saved.pending.iter().map(|p| p.key.clone()).collect();
        Ok(Box::new(S3Resumable {
            storage: self.clone(),
            key: key.as_str().to_owned(),
            upload: upload.to_owned(),
            state: saved,
            buffer,
            hash,
            superseded,
        }))
    }

    async fn abandon(
        &self,
        key: &ObjectKey,
        upload: &str,
        state: &str,
    ) -> Result<(), StorageError> {
        if let Ok(saved) = serde_json::from_str::<S3State>(state) {
            abort(&self.client, &self.bucket, key.as_str(), &saved.upload_id).await?;
        }
        self.delete_prefix(&pending_prefix(upload)).await?;
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| match sdk_error(e) {
                StorageError::NotFound => StorageError::Unavailable(anyhow::anyhow!(
                    "bucket {:?} does not exist",
                    self.bucket
                )),
                StorageError::Other(e) => StorageError::Unavailable(e),
                other => other,
            })?;
        Ok(())
    }
}

fn pending_prefix(upload: &str) -> String {
    format!("uploads/{upload}/")
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct S3State {
    upload_id: String,
    parts: Vec<StoredPart>,
    /// Bytes received past the last full part, in their own object.
    pending: Option<Pending>,
    /// The SHA-256 state over the bytes in `parts`.
    sha256_state: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredPart {
    number: i32,
    etag: Option<String>,
    size: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    key: String,
    size: u64,
}

/// A resumable write as one S3 multipart upload (the idea of tusd's S3 store): every full
/// part goes up as it fills, parts are all `part_size` (>= 5 MiB) but the last, and a
/// checkpoint puts the bytes short of a part into a pending object that the next request,
/// on any node, reads back first. Memory stays at one part.
struct S3Resumable {
    storage: S3Storage,
    key: String,
    upload: String,
    state: S3State,
    buffer: BytesMut,
    hash: HashState,
    /// Pending objects the next stored checkpoint makes obsolete.
    superseded: Vec<String>,
}

impl S3Resumable {
    async fn upload_part(&mut self, data: Bytes) -> Result<(), StorageError> {
        let number = self.state.parts.len() as i32 + 1;
        self.hash.update(&data);
        let size = data.len() as u64;
        let uploaded = self
            .storage
            .upload_part(&self.key, &self.state.upload_id, number, data)
            .await?;
        self.state.parts.push(StoredPart {
            number,
            etag: uploaded.e_tag().map(str::to_owned),
            size,
        });
        Ok(())
    }

    fn offset(&self) -> u64 {
        self.state.parts.iter().map(|p| p.size).sum::<u64>() + self.buffer.len() as u64
    }
}

#[async_trait]
impl Resumable for S3Resumable {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.buffer.extend_from_slice(&chunk);
        while self.buffer.len() >= self.storage.part_size {
            let part = self.buffer.split_to(self.storage.part_size).freeze();
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<(u64, String), StorageError> {
        let offset = self.offset();
        let current = self.state.pending.as_ref().map(|p| (p.key.clone(), p.size));
        let wanted = (!self.buffer.is_empty()).then(|| {
            (
                format!("{}pending-{offset}", pending_prefix(&self.upload)),
                self.buffer.len() as u64,
            )
        });
        if wanted != current {
            if let Some((key, size)) = &wanted {
                self.storage
                    .put_single(key, Bytes::copy_from_slice(&self.buffer))
                    .await?;
                self.state.pending = Some(Pending {
                    key: key.clone(),
                    size: *size,
                });
            } else {
                self.state.pending = None;
            }
            if let Some((old, _)) = current {
                self.superseded.push(old);
            }
        }
        self.state.sha256_state = self.hash.save();
        let state = serde_json::to_string(&self.state).expect("serializable");
        Ok((offset, state))
    }

    /// The previous state names the pending object `committed` deletes.
    fn durable_commits(&self) -> bool {
        true
    }

    async fn committed(&mut self) {
        let keep = self.state.pending.as_ref().map(|p| p.key.as_str());
        for key in std::mem::take(&mut self.superseded) {
            if Some(key.as_str()) == keep {
                continue;
            }
            // A leftover only costs space until the upload ends and its prefix goes.
            let _ = self
                .storage
                .client
                .delete_object()
                .bucket(&self.storage.bucket)
                .key(&key)
                .send()
                .await;
        }
    }

    async fn finish(mut self: Box<Self>) -> Result<PutOutcome, StorageError> {
        // The last part may be short; a multipart upload needs at least one part.
        if !self.buffer.is_empty() || self.state.parts.is_empty() {
            let last = std::mem::take(&mut self.buffer).freeze();
            self.upload_part(last).await?;
        }
        let parts = self
            .state
            .parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .set_e_tag(p.etag.clone())
                    .build()
            })
            .collect();
        self.storage
            .complete_multipart(&self.key, &self.state.upload_id, parts)
            .await?;
        let size = self.state.parts.iter().map(|p| p.size).sum();
        let prefix = pending_prefix(&self.upload);
        if let Err(e) = self.storage.delete_prefix(&prefix).await {
            tracing::warn!(%prefix, error = %e, "could not remove an upload's pending parts");
        }
        Ok(PutOutcome {
            size,
            sha256: self.hash.hex(),
        })
    }
}
