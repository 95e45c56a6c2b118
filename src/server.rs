//! Builds the application from its config and runs the HTTP server: hyper with a header-read
//! timeout (axum's own `serve` installs no timer), and a graceful shutdown that lets in-flight
//! downloads finish.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::{
    api::{self, AppParts, AppState, Settings},
    catalog,
    config::ServeConfig,
    delivery::signature::Signer,
    storage::DynStorage,
};

pub struct App {
    pub state: AppState,
    pub listener: TcpListener,
    pub addr: SocketAddr,
    config: ServeConfig,
}

pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tokio::fs::create_dir_all(&config.store.data_dir)
        .await
        .with_context(|| format!("creating data dir {}", config.store.data_dir.display()))?;

    let storage: DynStorage = crate::storage::open(&config.store).await?;
    let catalog = catalog::open(&config.store.database_url()).await?;
    let signer = match &config.signing_keys {
        Some(spec) => Signer::from_spec(&spec.0).context("REELAY_SIGNING_KEYS")?,
        None => Signer::load_or_create(&config.store.data_dir.join("signing-keys")).await?,
    };
    let settings = Settings {
        public_url: config.public_url(addr),
        max_upload_bytes: config.max_upload_bytes,
        body_idle_timeout: config.body_idle_timeout(),
        min_upload_rate: config.min_upload_rate,
        admin_key_sha256: config.admin_key.as_ref().map(|k| api::hash_token(&k.0)),
        api_cors_origins: config.api_cors_origins.clone(),
        delivery_cors_origins: config.delivery_cors_origins.clone(),
        job_max_attempts: config.worker.job_max_attempts,
        rate_limit_api_key: config.rate_limit_api_key,
        rate_limit_api_ip: config.rate_limit_api_ip,
        rate_limit_delivery_ip: config.rate_limit_delivery_ip,
        trust_forwarded_for: config.trust_forwarded_for,
        upload_lifetime: Duration::from_secs(config.upload_expiry_secs),
    };
    let state = AppState::new(AppParts {
        storage,
        catalog,
        signer: Arc::new(signer),
        settings: Arc::new(settings),
        metrics: crate::metrics::handle(),
        file_cache: moka::future::Cache::builder()
            .max_capacity(config.metadata_cache_entries)
            .time_to_live(Duration::from_secs(config.metadata_cache_ttl_secs))
            .build(),
        media_cache: moka::future::Cache::builder()
            .max_capacity(config.metadata_cache_entries / 10 + 1)
            .time_to_live(Duration::from_secs(config.metadata_cache_ttl_secs))
            .build(),
        job_wakeup: Arc::default(),
        purger: crate::purge::Purger::new(&config.purge_urls, config.edge_slice_bytes)?,
        rate_limiter: Arc::new(crate::api::RateLimiter::new(
            config.redis_url.clone(),
            config.rate_limit_namespace.clone(),
        )),
    });
    Ok(App {
        state,
        listener,
        addr,
        config,
    })
}

/// Serves until `shutdown` resolves, then stops accepting and waits (up to the grace period)
/// for in-flight requests.
pub async fn run(app: App, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let App {
        state,
        listener,
        addr,
        config,
    } = app;
    let sweeper = crate::sweeper::spawn(
        state.storage.clone(),
        state.catalog.clone(),
        Duration::from_secs(config.sweep_interval_secs.max(1)),
        Duration::from_secs(config.sweep_grace_secs),
    );
    let stop_workers = tokio_util::sync::CancellationToken::new();
    let workers = if config.worker.workers > 0 {
        let mut context = crate::jobs::WorkerContext::new(
            state.storage.clone(),
            state.catalog.clone(),
            config.worker.clone(),
            &config.store.data_dir,
        )
        .await?;
        context.wakeup = state.job_wakeup.clone();
        crate::jobs::spawn(context, config.worker.workers, stop_workers.clone())
    } else {
        Vec::new()
    };
    let router = api::router(state);
    let header_timeout = config.header_timeout();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tracing::info!(%addr, "listening");

    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                });
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(tcp),
            hyper_util::service::TowerToHyperService::new(service),
        ));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    sweeper.abort();
    // Workers hand their running job back to the queue and stop.
    stop_workers.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    tracing::info!("shutting down: waiting for in-flight requests");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// `reelay worker`: transcode workers on the shared catalog and storage, until SIGTERM.
pub async fn run_workers(command: crate::config::WorkerCommand) -> anyhow::Result<()> {
    let storage = crate::storage::open(&command.store).await?;
    let catalog = catalog::open(&command.store.database_url()).await?;
    let context = crate::jobs::WorkerContext::new(
        storage,
        catalog,
        command.worker.clone(),
        &command.store.data_dir,
    )
    .await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let workers = crate::jobs::spawn(context, command.worker.workers.max(1), stop.clone());
    if let Some(addr) = command.metrics_listen {
        // Workers have no API, but Prometheus scrapes every process: claims, rescues, outcomes.
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let handle = crate::metrics::handle();
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let handle = handle.clone();
                    async move { handle.render() }
                }),
            );
        tracing::info!(%addr, "worker metrics listening");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    shutdown_signal().await;
    tracing::info!("stopping workers");
    stop.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    Ok(())
}
