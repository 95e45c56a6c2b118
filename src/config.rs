//! Every setting is a flag and a `REELAY_*` environment variable (clap), with defaults that run
//! the embedded setup: fs storage and SQLite under `./data`. All environment access lives here.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "reelay",
    version,
    about = "File and media delivery: upload, store, stream, sign"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format for the server's logs.
    #[arg(long, env = "REELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and delivery server.
    Serve(Box<ServeConfig>),
    /// Upload a file to a running server and print its URL.
    Upload(crate::cli::upload::UploadArgs),
    /// Run transcode workers only (no HTTP), claiming jobs from the shared catalog.
    Worker(Box<WorkerCommand>),
    /// Media helpers: wait for a media to be ready.
    Media(crate::cli::media::MediaArgs),
    /// Create, list and revoke API keys (works on the catalog directly).
    Keys(crate::cli::keys::KeysArgs),
    /// Copy an SQLite catalog into PostgreSQL (the embedded -> production path).
    MigrateCatalog(crate::cli::migrate::MigrateArgs),
    /// Check the configured storage, or migrate an fs data dir to S3.
    Storage(crate::cli::storage::StorageArgs),
}

/// A secret that never shows in Debug output or logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    Fs,
    S3,
}

/// Where metadata and bytes live; shared by `serve` and the admin subcommands.
// `global`: `reelay keys create --data-dir D` works, not only `reelay keys --data-dir D create`.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// Directory for fs storage, the SQLite catalog and generated signing keys.
    #[arg(long, env = "REELAY_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Catalog database; default `sqlite://<data dir>/reelay.db`.
    #[arg(long, env = "REELAY_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Storage backend for object bytes.
    #[arg(
        long,
        env = "REELAY_STORAGE",
        value_enum,
        default_value_t = StorageKind::Fs,
        global = true
    )]
    pub storage: StorageKind,
    #[command(flatten)]
    pub s3: S3Config,
}

/// The `s3` backend's settings. Credentials come from the standard AWS variables
/// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), profiles or instance roles.
#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// Endpoint of an S3-compatible server (SeaweedFS, MinIO, Garage, R2); unset for AWS.
    #[arg(long = "s3-endpoint", env = "REELAY_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Bucket holding every object.
    #[arg(long = "s3-bucket", env = "REELAY_S3_BUCKET", default_value = "")]
    pub bucket: String,
    #[arg(
        long = "s3-region",
        env = "REELAY_S3_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,
    /// Path-style addressing (endpoint/bucket/key), needed by most self-hosted servers.
    #[arg(long = "s3-path-style", env = "REELAY_S3_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub path_style: bool,
    /// Multipart part size in bytes (at least 5 MiB); bodies below it go up in one PutObject.
    #[arg(long = "s3-part-size", env = "REELAY_S3_PART_SIZE", default_value_t = 8 * 1024 * 1024)]
    pub part_size: usize,
    /// Parts of one upload in flight at once; memory per upload is part size x (this + 1).
    #[arg(
        long = "s3-concurrency",
        env = "REELAY_S3_CONCURRENCY",
        default_value_t = 4
    )]
    pub concurrency: usize,
    /// Static credentials; when unset, the AWS credential chain (profiles, instance roles) is used.
    #[arg(
        long = "s3-access-key-id",
        env = "AWS_ACCESS_KEY_ID",
        hide_env_values = true
    )]
    pub access_key_id: Option<Secret>,
    #[arg(
        long = "s3-secret-access-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<Secret>,
}

impl S3Config {
    pub fn settings(&self) -> crate::storage::S3Settings {
        crate::storage::S3Settings {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            part_size: self.part_size,
            concurrency: self.concurrency,
            credentials: match (&self.access_key_id, &self.secret_access_key) {
                (Some(id), Some(secret)) => Some((id.0.clone(), secret.0.clone())),
                _ => None,
            },
        }
    }
}

impl StoreConfig {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("reelay.db").display()))
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }
}

/// How transcode workers run; shared by `serve` (in-process workers) and `worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Transcode workers to run in this process; `serve` with 0 is an API-only node.
    #[arg(long, env = "REELAY_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// ffmpeg binary (ffprobe is looked up beside it); default: found on PATH.
    #[arg(long, env = "REELAY_FFMPEG")]
    pub ffmpeg: Option<PathBuf>,
    /// Seconds a claimed job's lease lasts; workers heartbeat every third of it, and a job
    /// whose worker stops heartbeating is rescued after it.
    #[arg(long, env = "REELAY_JOB_LEASE", default_value_t = 60)]
    pub job_lease_secs: u64,
    /// Attempts a job gets before it fails for good.
    #[arg(long, env = "REELAY_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub job_max_attempts: u32,
    /// Seconds between looks at the queue when it is empty.
    #[arg(long, env = "REELAY_JOB_POLL_INTERVAL", default_value_t = 1)]
    pub job_poll_secs: u64,
    /// Scratch space for transcodes; default `<data dir>/work`.
    #[arg(long, env = "REELAY_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Tallest rendition (the source-resolution rung is capped at it).
    #[arg(long, env = "REELAY_MAX_HEIGHT", default_value_t = 1080)]
    pub max_height: u32,
    /// Segment duration in seconds.
    #[arg(long, env = "REELAY_SEGMENT_SECONDS", default_value_t = 4.0)]
    pub segment_seconds: f64,
    /// x264 preset for every rendition.
    #[arg(long, env = "REELAY_X264_PRESET", default_value = "veryfast")]
    pub x264_preset: String,
    /// Longest a single transcode may run, in seconds.
    #[arg(long, env = "REELAY_TRANSCODE_TIMEOUT", default_value_t = 7200)]
    pub transcode_timeout_secs: u64,
    /// Longest source accepted, in seconds.
    #[arg(long, env = "REELAY_MAX_DURATION", default_value_t = 6 * 3600)]
    pub max_duration_secs: u64,
}

impl WorkerConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.job_lease_secs.max(3))
    }
}

/// `reelay worker`: workers against the shared catalog and storage; HTTP only for /metrics.
#[derive(Debug, Clone, Args)]
pub struct WorkerCommand {
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// Serve /metrics and /healthz of this worker process on this address (unset: none).
    #[arg(long, env = "REELAY_WORKER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// Address to listen on.
    #[arg(long, env = "REELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Base of every URL the API returns (a CDN or a delivery host in production);
    /// default: derived from the listen address.
    #[arg(long, env = "REELAY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A bearer key with every right, for bootstrapping and tests.
    #[arg(long, env = "REELAY_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<Secret>,
    /// `kid:secret,...`; the first signs, all verify. Default: generated under the data dir.
    #[arg(long, env = "REELAY_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: Option<Secret>,
    /// Largest accepted upload, in bytes (413 above it).
    #[arg(long, env = "REELAY_MAX_UPLOAD_BYTES", default_value_t = 5 * 1024 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// Origins allowed to call the management API from a browser (comma-separated); none by default.
    #[arg(long, env = "REELAY_API_CORS_ORIGINS", value_delimiter = ',')]
    pub api_cors_origins: Vec<String>,
    /// `Access-Control-Allow-Origin` for delivery paths: `*` or a comma-separated list.
    #[arg(
        long,
        env = "REELAY_DELIVERY_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub delivery_cors_origins: Vec<String>,
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "REELAY_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds an upload body may stall before the request is refused.
    #[arg(long, env = "REELAY_BODY_IDLE_TIMEOUT", default_value_t = 30)]
    pub body_idle_timeout_secs: u64,
    /// Minimum average upload rate in bytes/s, checked over 30 s windows (0 disables).
    #[arg(long, env = "REELAY_MIN_UPLOAD_RATE", default_value_t = 1024)]
    pub min_upload_rate: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "REELAY_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Seconds between sweeps for blobs no catalog row references.
    #[arg(long, env = "REELAY_SWEEP_INTERVAL", default_value_t = 3600)]
    pub sweep_interval_secs: u64,
    /// A blob must be this many seconds old before the sweeper may remove it, so that an
    /// upload whose row is about to be written is never swept.
    #[arg(long, env = "REELAY_SWEEP_GRACE", default_value_t = 3600)]
    pub sweep_grace_secs: u64,
    /// How many file records the delivery path keeps in memory.
    #[arg(long, env = "REELAY_METADATA_CACHE_ENTRIES", default_value_t = 100_000)]
    pub metadata_cache_entries: u64,
    /// Shared rate-limit buckets for the whole cluster (redis://...); unset: per node.
    #[arg(long, env = "REELAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Management API limit per API key: RATE/UNIT[:BURST] (`off` disables).
    #[arg(long, env = "REELAY_RATE_LIMIT_API_KEY", default_value = "100/s:1000")]
    pub rate_limit_api_key: crate::api::Limit,
    /// Management API limit per client IP.
    #[arg(long, env = "REELAY_RATE_LIMIT_API_IP", default_value = "100/s:1000")]
    pub rate_limit_api_ip: crate::api::Limit,
    /// Delivery limit per client IP; off by default, since a CDN's few addresses carry everyone.
    #[arg(long, env = "REELAY_RATE_LIMIT_DELIVERY_IP", default_value = "off")]
    pub rate_limit_delivery_ip: crate::api::Limit,
    /// Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    #[arg(long, env = "REELAY_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
    /// Prefix of the rate-limit keys in Redis (several deployments may share one Redis).
    #[arg(long, env = "REELAY_RATE_LIMIT_NAMESPACE", default_value = "reelay")]
    pub rate_limit_namespace: String,
    /// Seconds a cached record lives. A delete invalidates the node that served it at once;
    /// every other node stops serving the deleted content within this bound.
    /// Seconds a resumable (tus) upload may take from creation to its last byte; past it the
    /// sweeper removes the partial bytes and the upload answers 410.
    #[arg(long, env = "REELAY_UPLOAD_EXPIRY", default_value_t = 24 * 3600)]
    pub upload_expiry_secs: u64,

    /// Edges to purge when a file or media is deleted: `xkey=URL` (Varnish) or `nginx=URL`
    /// (nginx cache-purge location), comma-separated.
    #[arg(long, env = "REELAY_PURGE_URLS", value_delimiter = ',')]
    pub purge_urls: Vec<String>,

    /// The nginx edge's slice size (its `slice` directive), to name each slice's cache entry.
    #[arg(long, env = "REELAY_EDGE_SLICE_BYTES", default_value_t = 1024 * 1024)]
    pub edge_slice_bytes: u64,

    #[arg(long, env = "REELAY_METADATA_CACHE_TTL", default_value_t = 10)]
    pub metadata_cache_ttl_secs: u64,
}

impl ServeConfig {
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.body_idle_timeout_secs)
    }

    /// Defaults for tests and embedding: everything under `data_dir`, port 0.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::try_parse_from(["serve"]).expect("defaults parse");
        config.store.data_dir = data_dir.into();
        config.listen = "127.0.0.1:0".parse().expect("valid address");
        config
    }

    fn try_parse_from(args: [&str; 1]) -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeConfig,
        }
        // Built without reading the environment, so a test is not shaped by the shell it runs in.
        let matches = <Wrapper as clap::CommandFactory>::command()
            .mut_args(|a| a.env(None::<&str>))
            .try_get_matches_from(args)?;
        <Wrapper as clap::FromArgMatches>::from_arg_matches(&matches).map(|w| w.serve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn test_defaults_ignore_the_environment() {
        let config = ServeConfig::for_data_dir("/tmp/x");
        assert_eq!(config.max_upload_bytes, 5 * 1024 * 1024 * 1024);
        assert_eq!(config.delivery_cors_origins, vec!["*".to_string()]);
    }
}
