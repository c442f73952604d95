use std::process::ExitCode;

use clap::Parser;
use reloader::cli::{Cli, Command};
use reloader::config::LogFormat;
use tokio_util::sync::CancellationToken;

/// Whether this binary was called by the name kubectl's plugin lookup finds: `kubectl-reloader`.
fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().starts_with("kubectl-reloader")))
        .unwrap_or(false)
}

/// Exit codes: 0 stopped cleanly, 1 `explain` or `status` failed, 2 could not start or run (a bad flag,
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

/// The answer of `explain` or `status` on stdout; a failure on stderr, exit 1.
fn answer(what: &str, result: Result<String, reloader::error::Error>) -> ! {
    match result {
        Ok(text) => {
            use std::io::Write as _;
            print!("{text}");
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("reloader {what}: {e}");
            std::process::exit(1);
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => *args,
        Some(Command::Explain(args)) => {
            let client = reloader::client::build(None).await?;
            answer("explain", reloader::explain::run(client, &args).await)
        }
        Some(Command::Status(args)) => {
            let client = reloader::client::build(None).await?;
            answer("status", reloader::explain::status(client, &args).await)
        }
        // As kubectl's plugin (`kubectl reloader …`), the binary only reads: it runs no controller.
        None if invoked_as_plugin() => {
            use clap::CommandFactory;
            Cli::command().name("kubectl reloader").bin_name("kubectl reloader").print_help()?;
            return Ok(());
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
    reloader::meta_info::spawn(&client, &args);
    let shutdown = CancellationToken::new();
    tokio::spawn(reloader::telemetry::shutdown_on_signal(shutdown.clone()));
    reloader::controller::run(reloader::controller::Ctx::new(client, settings), shutdown).await?;
    Ok(())
}
