//! The `llm-loadtest` binary: parse flags, set up logging, call the library,
//! map the outcome to an exit code (0 ran, 1 could not run, 3 verdict WARN
//! under --fail-on-mismatch).

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use llm_loadtest::cli::{Cli, Command};
use llm_loadtest::{daemon, doctor, offline, run, sim, telemetry};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The daemon logs after reading its config (which may choose the format); it logs each
    // run at info. One-shot commands log only warnings.
    let serve_config = match &cli.command {
        Command::Serve(args) => match daemon::load_serve_config(args.source.config.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Inside the runtime: the OTLP/gRPC exporter builds its channel on it.
    let endpoint =
        cli.otlp_endpoint.clone().or_else(|| serve_config.as_ref().and_then(|(c, _)| c.otlp_endpoint.clone()));
    let endpoint = endpoint.as_ref().map(url::Url::as_str);
    let telemetry = runtime.block_on(async {
        match &serve_config {
            Some((config, _)) => telemetry::init(cli.log_format.unwrap_or(config.log_format), "info", endpoint),
            None => telemetry::init(cli.log_format.unwrap_or_default(), "warn", endpoint),
        }
    });
    let telemetry = match telemetry {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // Every stream holds a socket: lift the soft open-files limit to the hard one.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("could not raise the open-files limit: {e}");
    }
    runtime.block_on(async move {
        let code = run_command(cli.command, serve_config).await;
        telemetry.shutdown().await;
        code
    })
}

async fn run_command(command: Command, serve_config: Option<(llm_loadtest::config::Config, bool)>) -> ExitCode {
    match command {
        Command::Run(args) => run::command(*args, cancel_on_signal()).await,
        Command::Sim(args) => match sim::run_standalone(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Doctor(args) => doctor::run_command(args).await,
        Command::Validate(args) => offline::validate_command(&args),
        Command::Merge(args) => llm_loadtest::merge::command(&args),
        Command::Worker(args) => {
            use llm_loadtest::coordinator::worker;
            let opts = worker::WorkerOptions {
                coordinator: args.coordinator,
                token_file: args.token_file,
                name: args.name.unwrap_or_else(worker::default_name),
                max_shards: args.max_shards,
            };
            match worker::serve(opts, cancel_on_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Inspect(what) => offline::inspect_command(&what),
        Command::CheckConfig(args) => daemon::check_config_command(&args.file),
        Command::Healthcheck(args) => daemon::healthcheck_command(&args.url, args.timeout).await,
        Command::Serve(args) => match serve_config {
            Some((config, demo)) => {
                let overrides =
                    daemon::ServeOverrides { listen: args.listen, data_dir: args.data_dir, otlp_listener: None };
                daemon::serve_command(config, overrides, demo, cancel_on_signal()).await
            }
            None => ExitCode::from(1),
        },
    }
}

/// Cancel on the first Ctrl-C / SIGTERM so a partial result is still written.
fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        // Not eprintln!: it panics when stderr is gone (a closed pipe), and the cancel must happen.
        let _ = writeln!(std::io::stderr(), "cancelling: waiting for requests in flight to be recorded ...");
        t.cancel();
    });
    token
}
