//! Command-line definitions. Every flag of every subcommand lives here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::openai::Endpoint;
use crate::workload::WorkloadPatch;
use crate::workload::spec::parse_duration;

#[derive(Parser, Debug)]
#[command(
    name = "llm-loadtest",
    version,
    about = "Load bursts against OpenAI-compatible LLM servers, cross-checked against the server's own numbers"
)]
pub struct Cli {
    /// Log format on stderr [default: text, or the config's `log_format` for `serve`].
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Export this tool's own spans (each run, its phases, its requests) over OTLP to this
    /// endpoint [default: `[otlp] endpoint` for `serve`, or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT].
    /// gRPC, unless OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=http/protobuf (then the full URL,
    /// ending in /v1/traces).
    #[arg(long, global = true, value_name = "URL")]
    pub otlp_endpoint: Option<url::Url>,
    #[command(subcommand)]
    pub command: Command,
}

/// The same choice as the daemon config's `log_format`.
pub use crate::config::LogFormat;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one burst and print the summary.
    Run(Box<RunArgs>),
    /// Run the vLLM-compatible simulator.
    Sim(crate::sim::SimArgs),
    /// Preflight a target: health, models, one streamed request, /metrics.
    Doctor(DoctorArgs),
    /// Recompute a run's validation from the directory `run --save-artifacts` wrote.
    Validate(ValidateArgs),
    /// Join the artifacts of the shards of one burst (`run --shard I/N`) into one result whose
    /// statistics come from the union of their records.
    Merge(MergeArgs),
    /// Show what the parsers understood of a saved file.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Run the daemon: scheduled and HTTP-triggered bursts, /metrics, a JSON API, a status page.
    Serve(ServeArgs),
    /// Check a daemon configuration file (and the LLM_LOADTEST__* environment) and exit.
    CheckConfig(CheckConfigArgs),
    /// Take shards of distributed bursts from a daemon (a target with `workers = N`) and run
    /// them: the daemon observes the server and judges the whole burst once.
    Worker(WorkerArgs),
    /// Exit 0 when a running daemon answers its readiness probe (for container HEALTHCHECKs,
    /// where the image has no curl).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// The URL to probe.
    #[arg(long, env = "LLM_LOADTEST_HEALTHCHECK_URL", default_value = "http://127.0.0.1:9464/readyz")]
    pub url: url::Url,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub timeout: Duration,
}

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ServeSource {
    /// The daemon configuration (TOML; see config/example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start the built-in simulator and run the daemon against it (config/demo.toml).
    #[arg(long)]
    pub demo: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: ServeSource,
    /// Listen address, over the config's `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// History directory, over the config's `data_dir`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CheckConfigArgs {
    /// The configuration file to check.
    pub file: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Artifact directory (result.json, requests.jsonl, metrics_*.txt).
    pub dir: PathBuf,
    /// Override the saved tolerance (fraction; latencies get twice it).
    #[arg(long, value_parser = parse_fraction)]
    pub tolerance: Option<f64>,
    /// Print the validation as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit with code 3 when the recomputed verdict is WARN.
    #[arg(long)]
    pub fail_on_mismatch: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum InspectCommand {
    /// A saved Prometheus /metrics exposition (text 0.0.4 or OpenMetrics).
    Metrics {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A saved vLLM server log (`docker logs` output, with or without --timestamps, any vLLM version).
    Logs {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number; use a fraction like 0.05 for ±5%"))?;
    if !(v.is_finite() && v > 0.0 && v <= 10.0) {
        return Err(format!("`{s}`: the tolerance must be a fraction above 0 and at most 10 (0.05 = ±5%)"));
    }
    Ok(v)
}

/// A value that must say something (a container name, a label).
fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() { Err("must not be empty".into()) } else { Ok(s.to_owned()) }
}

fn parse_target(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s)
        .map_err(|e| format!("`{s}` is not a URL ({e}); expected something like http://127.0.0.1:8000"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("`{s}`: only http:// and https:// targets are supported"));
    }
    if u.host_str().is_none() {
        return Err(format!("`{s}` has no host"));
    }
    Ok(u)
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted).
    #[arg(long, value_parser = parse_target, required_unless_present = "demo")]
    pub target: Option<url::Url>,
    /// Model name as the server serves it.
    #[arg(long, required_unless_present = "demo")]
    pub model: Option<String>,
    /// The load: every key of the workload, as flags (defaults live in `Workload::default`).
    #[command(flatten)]
    pub workload: WorkloadPatch,
    /// API key (sent as a bearer token; never printed). Prefer the env var or --api-key-file.
    #[arg(long, env = "LLM_LOADTEST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Read the API key from this file (first line).
    #[arg(long, conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// Write the result JSON here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Save the result JSON and every request record (JSONL) into this directory.
    #[arg(long)]
    pub save_artifacts: Option<PathBuf>,
    /// Server /metrics to cross-check with (default: TARGET/metrics). Repeat it for a fleet:
    /// the replicas' counters are summed, and each replica's share is reported.
    #[arg(long, value_parser = parse_target)]
    pub metrics_url: Vec<url::Url>,
    /// A fleet's /metrics by DNS name: the URL's host is resolved to every address when the
    /// burst starts (a headless Kubernetes Service), each one a replica.
    #[arg(long, value_parser = parse_target, conflicts_with = "metrics_url")]
    pub metrics_dns: Option<url::Url>,
    /// Do not scrape /metrics or read logs; measure the client only.
    #[arg(long)]
    pub skip_validation: bool,
    /// The server's container (name or id), for log validation through the Docker Engine API.
    /// Repeat it for a fleet: the replicas' logs are judged together. Default: found by the
    /// target's port (published, or --port in a host-network container's command).
    #[arg(long, value_parser = non_empty)]
    pub container: Vec<String>,
    /// A fleet's containers by Docker label (`key` or `key=value`): every running container
    /// with it when the burst starts.
    #[arg(long, value_parser = non_empty, conflicts_with = "container")]
    pub container_label: Option<String>,
    /// Do not read the server container's logs.
    #[arg(long)]
    pub skip_logs: bool,
    /// Receive vLLM's OpenTelemetry spans here (OTLP/gRPC and OTLP/HTTP on one address, e.g.
    /// 127.0.0.1:4317) and validate every request against its own span. Start vLLM with
    /// `--otlp-traces-endpoint http://ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub otlp_receiver: Option<std::net::SocketAddr>,
    /// Relative tolerance of the count checks (0.05 = ±5%); latency checks get twice it.
    /// Default: 5% for counts, 10% for TTFT and E2E.
    #[arg(long, value_parser = parse_fraction)]
    pub tolerance: Option<f64>,
    /// Exit with code 3 when the validation verdict is WARN.
    #[arg(long)]
    pub fail_on_mismatch: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Start the built-in simulator on a free loopback port and target it.
    #[arg(long)]
    pub demo: bool,
    /// Run only shard I of N of the plan (0 <= I < N): its share of the concurrency and the
    /// requests (closed loop), or every N-th arrival of the one seeded schedule (open loop).
    /// `llm-loadtest merge` joins the N shards' artifacts into one result.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::workload::Shard>,
    /// Start the measured load at this wall-clock instant (RFC 3339, e.g.
    /// 2026-12-06T22:30:00Z), the same for every shard.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<jiff::Timestamp>,
}

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The daemon's base URL, e.g. http://llm-loadtest:9464.
    #[arg(long, value_parser = parse_target)]
    pub coordinator: url::Url,
    /// A file whose first line is the workers' token (the daemon's `[workers] token_file`).
    #[arg(long)]
    pub token_file: PathBuf,
    /// This worker's name in results and logs ([A-Za-z0-9_.-], at most 64); default HOSTNAME-PID.
    #[arg(long)]
    pub name: Option<String>,
    /// Exit after running this many shards (default: until stopped).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::workload::spec::parse_count::<u64>)]
    pub max_shards: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The artifact directories of the shards (`run --shard I/N --save-artifacts DIR`).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Write the merged result.json and requests.jsonl here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the merged result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    #[arg(long, value_parser = parse_target)]
    pub target: url::Url,
    #[arg(long)]
    pub model: String,
    #[arg(long, value_enum, default_value = "chat")]
    pub endpoint: Endpoint,
    #[arg(long, env = "LLM_LOADTEST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[arg(long, conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// Time limit of each check.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_explained() {
        assert!(parse_target("localhost:8000").unwrap_err().contains("http"));
        assert!(parse_target("not a url").unwrap_err().contains("not a URL"));
        assert!(parse_target("ftp://x").unwrap_err().contains("only http"));
        assert!(parse_target("http://127.0.0.1:8000/v1").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_are_a_workload_patch() {
        let run = |argv: &[&str]| match Cli::try_parse_from([&["x", "run", "--demo"], argv].concat()) {
            Ok(Cli { command: Command::Run(a), .. }) => Ok(a.workload),
            Ok(_) => unreachable!(),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(run(&[]).unwrap(), WorkloadPatch::default());
        let p =
            run(&["--no-stream", "--poisson", "--rate", "2", "--ignore-eos", "--goodput", "ttft:5", "tpot:2"]).unwrap();
        assert_eq!((p.stream, p.poisson, p.rate, p.ignore_eos), (Some(false), Some(true), Some(2.0), Some(true)));
        assert_eq!(p.goodput.map(|g| g.len()), Some(2));
        assert!(run(&["--extra-body", "[1]"]).unwrap_err().contains("JSON object"));
        assert!(run(&["--extra-body", "{"]).unwrap_err().contains("not valid JSON"));
        assert_eq!(run(&["--rate", "-1"]).unwrap().rate, Some(-1.0));
        // A negative count is refused with the range it must be in, not as an unknown argument.
        for flag in [
            "--requests",
            "--concurrency",
            "--seed",
            "--warmup",
            "--max-tokens",
            "--target-lost-after",
            "--memory-budget-mib",
        ] {
            let e = run(&[flag, "-3"]).unwrap_err();
            assert!(e.contains("invalid value '-3'") && e.contains("must be 0 or more"), "{flag}: {e}");
        }
        assert!(run(&["--concurrency", "5000000000"]).unwrap_err().contains("too large"));
        assert!(run(&["--requests", "ten"]).unwrap_err().contains("whole number"));
        assert_eq!(
            run(&["--requests", "0", "--concurrency", "7"]).map(|p| (p.requests, p.concurrency)),
            Ok((Some(0), Some(7)))
        );
    }

    #[test]
    fn a_tolerance_out_of_range_names_the_range() {
        for bad in ["11", "0", "-0.1", "NaN"] {
            let e = parse_fraction(bad).unwrap_err();
            assert!(e.contains("above 0 and at most 10"), "{bad}: {e}");
        }
        assert_eq!(parse_fraction("10"), Ok(10.0));
    }
}
