//! The `llm-loadtest` binary: parse flags, set up logging, call the library,
//! map the outcome to an exit code (0 ran, 1 could not run, 3 verdict WARN
//! under --fail-on-mismatch).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use llm_loadtest::cli::{Cli, Command, LogFormat, RunArgs};
use llm_loadtest::{doctor, report, run, sim};
use tokio_util::sync::CancellationToken;

/// `LLM_LOADTEST_LOG` (an env-filter, e.g. `debug`) or `default_level`.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LLM_LOADTEST_LOG").unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

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
        Command::Serve(args) => match load_serve_config(args) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    match &serve_config {
        Some((config, _)) => init_logging(cli.log_format.unwrap_or(config.log_format), "info"),
        None => init_logging(cli.log_format.unwrap_or_default(), "warn"),
    }
    // Every stream holds a socket: lift the soft open-files limit to the hard one.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("could not raise the open-files limit: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run_command(*args).await,
            Command::Sim(args) => match sim::run_standalone(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            },
            Command::Doctor(args) => doctor::run_command(args).await,
            Command::Validate(args) => validate_command(&args),
            Command::Inspect(what) => inspect_command(&what),
            Command::CheckConfig(args) => check_config_command(&args),
            Command::Healthcheck(args) => healthcheck_command(&args).await,
            Command::Serve(args) => match serve_config {
                Some((config, demo)) => serve_command(args, config, demo).await,
                None => ExitCode::from(1),
            },
        }
    })
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
        eprintln!("cancelling: waiting for requests in flight to be recorded ...");
        t.cancel();
    });
    token
}

async fn run_command(args: RunArgs) -> ExitCode {
    // The demo's simulator lives as long as the run.
    let mut demo = None;
    let (target, model) = if args.demo {
        match start_demo_sim().await {
            Ok((h, url, model)) => {
                demo = Some(h);
                (Some(url), model)
            }
            Err(code) => return code,
        }
    } else {
        (args.target.clone(), args.model.clone().unwrap_or_default())
    };
    let Some(target) = target else {
        eprintln!("error: --target is required (or use --demo)");
        return ExitCode::from(1);
    };
    let mut args = args;
    if args.demo {
        // A short demo unless the user asked for more.
        args.requests = args.requests.or(if args.duration.is_none() { Some(64) } else { None });
        args.concurrency = args.concurrency.or(Some(16));
    }
    let run_id = run::new_run_id();
    let prepared = match run::prepare(&args, &target, &model, &run_id) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let progress = progress_bar(&args, &prepared);
    let observer: Option<llm_loadtest::burst::RecordObserver> = progress.clone().map(|pb| {
        Arc::new(move |r: &llm_loadtest::burst::RequestRecord| {
            if !r.warmup {
                pb.inc(1);
            }
        }) as llm_loadtest::burst::RecordObserver
    });
    let cancel = cancel_on_signal();
    let result = run::run_prepared(prepared, run_id, cancel, observer).await;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if let Some(h) = demo {
        h.shutdown().await;
    }
    print!("{}", report::render(&result));
    if let Some(v) = &result.validation {
        print!("{}", llm_loadtest::validate::render_table(v));
    }
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.output {
        match run::write_atomic(path, &run::result_json(&result)) {
            Ok(()) => eprintln!("result written to {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    if let Some(dir) = &args.save_artifacts {
        match run::save_artifacts(dir, &result) {
            Ok(()) => eprintln!("artifacts saved in {}", dir.display()),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    if result.target_unreachable() {
        eprintln!("error: the target could not be reached: no request got a response (see the errors above)");
        code = ExitCode::from(1);
    } else if args.fail_on_mismatch
        && result.validation.as_ref().is_some_and(|v| v.overall == llm_loadtest::validate::Status::Warn)
    {
        eprintln!("validation verdict WARN (--fail-on-mismatch): exit code 3");
        code = ExitCode::from(3);
    }
    code
}

/// The quiet in-process simulator of `run --demo` and `serve --demo` on a free loopback port:
/// its handle, base URL and model; the error is already printed.
async fn start_demo_sim() -> Result<(sim::SimHandle, url::Url, String), ExitCode> {
    let config = sim::SimConfig { log_sink: sim::LogSink::Discard, ..sim::SimConfig::default() };
    let model = config.model.clone();
    let h = sim::start(config, ([127, 0, 0, 1], 0).into()).await.map_err(|e| {
        eprintln!("error: could not start the simulator: {e}");
        ExitCode::from(1)
    })?;
    match url::Url::parse(&h.base_url()) {
        Ok(url) => Ok((h, url, model)),
        Err(e) => {
            eprintln!("error: the simulator's address {} is not a URL: {e}", h.base_url());
            h.shutdown().await;
            Err(ExitCode::from(1))
        }
    }
}

/// The config of `serve`: the file, or the demo's (its simulator is started later, in the
/// runtime; the target URL is filled in then).
fn load_serve_config(args: &llm_loadtest::cli::ServeArgs) -> Result<(llm_loadtest::config::Config, bool), String> {
    match &args.source.config {
        Some(path) => llm_loadtest::config::load(path).map(|c| (c, false)).map_err(|e| e.to_string()),
        None => {
            let placeholder = url::Url::parse("http://127.0.0.1:1").map_err(|e| e.to_string())?;
            llm_loadtest::config::demo(&placeholder, "sim-model").map(|c| (c, true)).map_err(|e| e.to_string())
        }
    }
}

async fn serve_command(
    args: llm_loadtest::cli::ServeArgs,
    config: llm_loadtest::config::Config,
    demo: bool,
) -> ExitCode {
    let mut config = config;
    let mut sim = None;
    if demo {
        match start_demo_sim().await {
            Ok((h, url, model)) => {
                for t in &mut config.targets {
                    t.url = url.clone();
                    t.model = model.clone();
                }
                eprintln!("demo: simulator serving {model} at {url}");
                sim = Some(h);
            }
            Err(code) => return code,
        }
    }
    let overrides = llm_loadtest::daemon::ServeOverrides { listen: args.listen, data_dir: args.data_dir.clone() };
    let stop = cancel_on_signal();
    let result = llm_loadtest::daemon::serve(config, overrides, stop, |addr| {
        eprintln!("llm-loadtest serving on http://{addr}/ (status page), /metrics, /api/v1/runs");
    })
    .await;
    if let Some(h) = sim {
        h.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn healthcheck_command(args: &llm_loadtest::cli::HealthcheckArgs) -> ExitCode {
    let client = match reqwest::Client::builder().no_proxy().timeout(args.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {}", llm_loadtest::error::error_chain(&e));
            return ExitCode::from(1);
        }
    };
    match client.get(args.url.as_str()).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("unhealthy: {} answered {}", args.url, r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {}: {}", args.url, llm_loadtest::error::error_chain(&e));
            ExitCode::from(1)
        }
    }
}

fn check_config_command(args: &llm_loadtest::cli::CheckConfigArgs) -> ExitCode {
    match llm_loadtest::config::load(&args.file) {
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            ExitCode::from(1)
        }
        Ok(c) => {
            println!("{}: OK, {} target(s)", args.file.display(), c.targets.len());
            for t in &c.targets {
                let schedule = match t.schedule {
                    None => "on trigger only".to_owned(),
                    Some(s) => format!("every {}", humantime::format_duration(s.interval)),
                };
                println!("  {} -> {} ({}), {schedule}", t.name, t.url, t.model);
            }
            for w in c.warnings() {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
    }
}

fn validate_command(args: &llm_loadtest::cli::ValidateArgs) -> ExitCode {
    match llm_loadtest::offline::validate_dir(&args.dir, args.tolerance) {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Ok(v) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", llm_loadtest::validate::render_table(&v));
            }
            if args.fail_on_mismatch && v.overall == llm_loadtest::validate::Status::Warn {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn inspect_command(what: &llm_loadtest::cli::InspectCommand) -> ExitCode {
    use llm_loadtest::cli::InspectCommand;
    match what {
        InspectCommand::Metrics { file, json } => match std::fs::read(file) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                ExitCode::from(1)
            }
            Ok(bytes) => {
                // Saved files may hold anything: decode lossily, never fail on bytes.
                let v = llm_loadtest::offline::inspect_metrics(&String::from_utf8_lossy(&bytes));
                if *json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", llm_loadtest::offline::render_inspect_metrics(&v));
                }
                ExitCode::SUCCESS
            }
        },
        InspectCommand::Logs { file, json } => match std::fs::read(file) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                ExitCode::from(1)
            }
            Ok(bytes) => {
                let findings = llm_loadtest::logs::analyze_text(&String::from_utf8_lossy(&bytes));
                let v = findings.summary_json();
                if *json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", llm_loadtest::offline::render_inspect_logs(&findings));
                }
                ExitCode::SUCCESS
            }
        },
    }
}

fn progress_bar(args: &RunArgs, p: &run::Prepared) -> Option<indicatif::ProgressBar> {
    if args.quiet || std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match p.plan.stop {
        llm_loadtest::workload::StopCondition::Requests(n) => indicatif::ProgressBar::new(n),
        llm_loadtest::workload::StopCondition::Duration(_) => indicatif::ProgressBar::new_spinner(),
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}
