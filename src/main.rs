use clap::Parser;
use reelay::config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("REELAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(config) => {
            let app = reelay::server::build(*config).await?;
            reelay::server::run(app, reelay::server::shutdown_signal()).await
        }
        Command::Worker(command) => reelay::server::run_workers(*command).await,
        Command::Media(args) => reelay::cli::media::run(args).await,
        Command::Upload(args) => reelay::cli::upload::run(args).await,
        Command::Keys(args) => reelay::cli::keys::run(args).await,
        Command::Storage(args) => reelay::cli::storage::run(args).await,
        Command::MigrateCatalog(args) => reelay::cli::migrate::run(args).await,
    }
}
