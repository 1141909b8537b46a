//! Helpers shared by the integration tests: a quiet in-process simulator and
//! one burst run through the same code path as `llm-loadtest run`.
#![allow(dead_code)] // each test binary uses its own subset

pub mod daemon;
pub mod docker;

use clap::Parser;
use llm_loadtest::cli::{Cli, Command, RunArgs};
use llm_loadtest::run::{self, RunResult};
use llm_loadtest::sim::{self, LogSink, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

/// `llm-loadtest run --target URL --model sim-model --quiet <base> <extra>`, parsed.
pub fn run_args(url: &str, base: &[&str], extra: &[&str]) -> RunArgs {
    let mut argv = vec!["llm-loadtest", "run", "--target", url, "--model", "sim-model", "--quiet"];
    // A flag given in `extra` replaces the same flag of `base`.
    let mut i = 0;
    while i < base.len() {
        let takes_value = base.get(i + 1).is_some_and(|v| !v.starts_with("--"));
        if !extra.contains(&base[i]) {
            argv.push(base[i]);
            if takes_value {
                argv.push(base[i + 1]);
            }
        }
        i += if takes_value { 2 } else { 1 };
    }
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(a) => *a,
        _ => unreachable!(),
    }
}

pub async fn sim_with(config: SimConfig) -> SimHandle {
    sim::start(SimConfig { log_sink: LogSink::Discard, ..config }, ([127, 0, 0, 1], 0).into()).await.unwrap()
}

/// One burst against `url` with model `model`.
pub async fn burst_with(url: &str, model: &str, a: &RunArgs) -> RunResult {
    let p = run::prepare(a, &url::Url::parse(url).unwrap(), model, "t").unwrap();
    run::run_prepared(p, "t".into(), CancellationToken::new(), None).await
}
