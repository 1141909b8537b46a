//! The `run` command's glue: flags to a [`BurstPlan`], the burst, then the
//! summary on the terminal, the result files and the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::artifacts::{self, RunResult};
use crate::burst::{self, BurstPlan, RecordObserver, Target};
use crate::cli::RunArgs;
use crate::docker::ContainerSource;
use crate::error::RunError;
use crate::record::RequestRecord;
use crate::server::MetricsSource;
use crate::traces::{Hub, Receiver};
use crate::validate::{Status, Tolerances};
use crate::workload::{StopCondition, Workload, WorkloadPatch, flag_name};

/// The flags as a burst plan: the workload's defaults under the flags (and, for `--demo`, a
/// short demo load between them), its rules reported with flag names. Nothing is sent.
pub fn prepare(
    args: &RunArgs,
    target: &url::Url,
    model: &str,
    run_id: &str,
    spans: Option<Arc<Hub>>,
) -> Result<BurstPlan, RunError> {
    let mut workload = Workload::default();
    if args.demo {
        workload.overlay(&WorkloadPatch { requests: Some(64), concurrency: Some(16), ..WorkloadPatch::default() });
    }
    workload.overlay(&args.workload);
    let problems: Vec<String> = workload.validate().iter().map(|p| p.render(flag_name)).collect();
    if !problems.is_empty() {
        return Err(RunError::BadInput(problems.join("; ")));
    }
    let target = Target {
        metrics: match (&args.metrics_dns, &args.metrics_url[..]) {
            (Some(name), _) => Some(MetricsSource::Dns(name.clone())),
            (None, []) => None,
            (None, urls) => Some(MetricsSource::Urls(urls.to_vec())),
        },
        container: match (&args.container_label, &args.container[..]) {
            (Some(label), _) => Some(ContainerSource::Label(label.clone())),
            (None, []) => None,
            (None, names) => Some(ContainerSource::Named(names.to_vec())),
        },
        api_key: args.api_key.clone(),
        api_key_file: args.api_key_file.clone(),
        skip_validation: args.skip_validation,
        skip_logs: args.skip_logs,
        spans,
        shard: args.shard.unwrap_or_default(),
        start_at: args.start_at,
        ..Target::new(target.clone(), model)
    };
    let tolerances = args.tolerance.map_or_else(Tolerances::default, Tolerances::uniform);
    burst::plan(&target, &workload, tolerances, run_id)
}

/// `llm-loadtest run`: 0 ran, 1 could not run, 3 WARN under `--fail-on-mismatch`.
pub async fn command(args: RunArgs, cancel: CancellationToken) -> ExitCode {
    // The receiver lives as long as the run; vLLM exports to it. The demo always has one
    // (on a free loopback port unless given), so its simulator's spans show the traces section.
    let receiver_addr = match (&args.otlp_receiver, args.demo) {
        (Some(addr), _) => Some(addr.to_string()),
        (None, true) => Some("127.0.0.1:0".to_owned()),
        (None, false) => None,
    };
    let receiver = match receiver_addr {
        Some(addr) => match Receiver::start(&addr, Hub::new()).await {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    // The demo's simulator lives as long as the run.
    let (demo, target, model) = if args.demo {
        match crate::sim::start_demo(receiver.as_ref().map(|r| r.addr)).await {
            Ok((h, url, model)) => (Some(h), Some(url), model),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        (None, args.target.clone(), args.model.clone().unwrap_or_default())
    };
    let Some(target) = target else {
        eprintln!("error: --target is required (or use --demo)");
        return ExitCode::from(1);
    };
    let run_id = artifacts::new_run_id();
    let plan = match prepare(&args, &target, &model, &run_id, receiver.as_ref().map(|r| Arc::clone(&r.hub))) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let progress = progress_bar(&args, plan.recorded.stop);
    let observer: Option<RecordObserver> = progress.clone().map(|pb| {
        Arc::new(move |r: &RequestRecord| {
            if !r.warmup {
                pb.inc(1);
            }
        }) as RecordObserver
    });
    let result = burst::run(plan, run_id, cancel, observer).await;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if let Some(h) = demo {
        h.shutdown().await;
    }
    if let Some(r) = &receiver {
        tracing::info!("OTLP receiver: {}", crate::traces::receiver::summary(&r.hub.counters));
    }
    print!("{}", crate::report::render(&result));
    if let Some(v) = &result.validation {
        print!("{}", crate::validate::render_table(v));
    }
    let mut code = write_outputs(&args, &result);
    if result.target_unreachable() {
        eprintln!("error: the target could not be reached: no request got a response (see the errors above)");
        code = ExitCode::from(1);
    } else if result.all_requests_failed() && !result.cancelled {
        // The run ran (exit 0), but it is a failed run, as the daemon records it.
        let most = result.dominant_error().map(|(k, n)| format!("; most: {k} ({n})")).unwrap_or_default();
        eprintln!("warning: no request completed: all {} failed{most}", result.client.num_requests);
    } else if args.fail_on_mismatch && result.validation.as_ref().is_some_and(|v| v.overall == Status::Warn) {
        eprintln!("validation verdict WARN (--fail-on-mismatch): exit code 3");
        code = ExitCode::from(3);
    }
    code
}

/// `--output` and `--save-artifacts`; a write error is exit code 1 (the summary is printed).
fn write_outputs(args: &RunArgs, result: &RunResult) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.output {
        match artifacts::write_atomic(path, &artifacts::result_json(result)) {
            Ok(()) => eprintln!("result written to {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    if let Some(dir) = &args.save_artifacts {
        match artifacts::save(dir, result) {
            Ok(()) => eprintln!("artifacts saved in {}", dir.display()),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    code
}

fn progress_bar(args: &RunArgs, stop: StopCondition) -> Option<indicatif::ProgressBar> {
    if args.quiet || std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match stop {
        StopCondition::Requests(n) => indicatif::ProgressBar::new(n),
        StopCondition::Duration(_) => indicatif::ProgressBar::new_spinner(),
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}
