use clap::Parser;
use reloader::config::{Cli, Command, LogFormat};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => *args,
        Some(Command::Explain(args)) => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
            match reloader::explain::run(client, &args).await {
                Ok(text) => {
                    print!("{text}");
                    return Ok(());
                }
                Err(e) => {
                    eprintln!("reloader explain: {e}");
                    std::process::exit(1);
                }
            }
        }
        None => cli.run,
    };
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reloader: {e}");
            std::process::exit(2);
        }
    };
    reloader::telemetry::init(settings.log_format == LogFormat::Json, &settings.log_level);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "Starting Reloader");
    for n in &settings.notices {
        tracing::warn!("{n}");
    }
    let client =
        kube::Client::try_default().await.map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(reloader::telemetry::shutdown_on_signal(shutdown.clone()));
    reloader::controller::run(reloader::controller::Ctx::new(client, settings), shutdown).await
}
