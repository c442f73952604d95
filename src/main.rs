use std::process::ExitCode;

use clap::Parser;
use reloader::cli::{Cli, Command};
use reloader::config::LogFormat;
use tokio_util::sync::CancellationToken;

/// Exit codes: 0 stopped cleanly, 1 `explain` failed, 2 could not start or run (a bad flag,
/// an address in use, no cluster configuration): one line on stderr says which.
fn main() -> ExitCode {
    reloader::memory::one_arena();
    // Two worker threads whatever the node's size: the work is I/O, and every extra thread
    // costs memory (its stack and, with glibc, an allocator arena).
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|rt| rt.block_on(run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever RUST_BACKTRACE says: the message names what failed.
            eprintln!("reloader: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => *args,
        Some(Command::Explain(args)) => {
            let client = reloader::client::build(None).await?;
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
    let client = reloader::client::build(settings.ha_identity()).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(reloader::telemetry::shutdown_on_signal(shutdown.clone()));
    reloader::controller::run(reloader::controller::Ctx::new(client, settings), shutdown).await?;
    Ok(())
}
