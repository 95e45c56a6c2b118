//! `reelay storage check` validates the configured storage and says what is wrong in plain
//! words; `reelay storage migrate --to s3` copies an fs data dir's objects to S3, verifying each
//! object's SHA-256 by reading it back.

use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::{
    catalog,
    config::{StorageKind, StoreConfig},
    storage::{self, DynStorage, FsStorage, ObjectKey, S3Storage, StorageError},
};

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(subcommand)]
    pub action: StorageAction,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Target {
    S3,
}

#[derive(Debug, Subcommand)]
pub enum StorageAction {
    /// Check that the configured storage works: reachable, bucket exists, write/read/delete.
    Check,
    /// Copy every object of the fs data dir to another backend and verify each SHA-256.
    Migrate {
        #[arg(long, value_enum)]
        to: Target,
    },
}

pub async fn run(args: StorageArgs) -> anyhow::Result<()> {
    match args.action {
        StorageAction::Check => check(&args.store).await,
        StorageAction::Migrate { to: Target::S3 } => migrate_to_s3(&args.store).await,
    }
}

fn explain(e: &StorageError) -> String {
    let detail = format!("{e:#}");
    let hint = if detail.contains("SignatureDoesNotMatch") {
        " (the secret key is wrong, or the region does not match the server's)"
    } else if detail.contains("AccessDenied") || detail.contains("InvalidAccessKeyId") {
        " (the credentials were refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    } else if detail.contains("does not exist") || detail.contains("NoSuchBucket") {
        " (create the bucket first, or fix REELAY_S3_BUCKET)"
    } else if matches!(e, StorageError::Unavailable(_)) {
        " (is REELAY_S3_ENDPOINT right and the server up?)"
    } else {
        ""
    };
    format!("{detail}{hint}")
}

async fn check(store: &StoreConfig) -> anyhow::Result<()> {
    let storage = storage::open(store).await?;
    let what = match store.storage {
        StorageKind::Fs => format!("fs storage at {}", store.objects_dir().display()),
        StorageKind::S3 => format!(
            "bucket {:?} at {}",
            store.s3.bucket,
            store.s3.endpoint.as_deref().unwrap_or("AWS")
        ),
    };
    println!("checking {what}");
    storage
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("not reachable: {}", explain(&e)))?;
    println!("  reachable: ok");
    let key = ObjectKey::probe(&format!(
        "check-{}",
        crate::ids::random_secret(6).replace(['-', '_'], "0")
    ));
    let payload = bytes::Bytes::from_static(b"reelay storage check");
    storage
        .put(
            &key,
            futures::stream::once(async move { Ok(payload) }).boxed(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot write: {}", explain(&e)))?;
    println!("  write: ok");
    let read = read_all_hash(&storage, &key)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read back: {}", explain(&e)))?;
    anyhow::ensure!(
        read == hex::encode(Sha256::digest(b"reelay storage check")),
        "read back different bytes than were written"
    );
    println!("  read: ok");
    storage
        .delete(&key)
        .await
        .map_err(|e| anyhow::anyhow!("cannot delete: {}", explain(&e)))?;
    println!("  delete: ok");
    println!("storage works");
    Ok(())
}

async fn read_all_hash(storage: &DynStorage, key: &ObjectKey) -> Result<String, StorageError> {
    let mut stream = storage.get(key, None).await?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(chunk.map_err(StorageError::from_io)?);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn migrate_to_s3(store: &StoreConfig) -> anyhow::Result<()> {
    let source: DynStorage = std::sync::Arc::new(FsStorage::open(store.objects_dir()).await?);
    let target: DynStorage = std::sync::Arc::new(S3Storage::connect(store.s3.settings()).await?);
    target
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("S3 is not usable: {}", explain(&e)))?;
    let catalog = catalog::open(&store.database_url()).await?;
    let objects = source.list("").await?;
    println!(
        "copying {} objects to bucket {:?}",
        objects.len(),
        store.s3.bucket
    );
    let (mut copied, mut bytes) = (0u64, 0u64);
    for object in objects {
        let Some(key) = ObjectKey::from_listing(&object.key) else {
            println!("  skipping {:?}: not a key Reelay makes", object.key);
            continue;
        };
        let written = target.put(&key, source.get(&key, None).await?).await?;
        if let Some(id) = ObjectKey::file_id_of(key.as_str()) {
            if let Some(record) = catalog.get_file(&id).await? {
                anyhow::ensure!(
                    record.sha256 == written.sha256,
                    "{key}: the fs copy's SHA-256 differs from the catalog's; not migrating it"
                );
            }
        }
        let read_back = read_all_hash(&target, &key).await?;
        anyhow::ensure!(
            read_back == written.sha256,
            "{key}: S3 returned different bytes than were written"
        );
        copied += 1;
        bytes += written.size;
        println!(
            "  {key}: {} bytes, sha256 {} verified",
            written.size, written.sha256
        );
    }
    println!(
        "copied and verified {copied} objects ({bytes} bytes); set REELAY_STORAGE=s3 to use them"
    );
    Ok(())
}
