//! The `run` command: one burst from flags to a result (JSON, artifacts, summary).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::burst::{self, LoadSpec, RecordObserver, RequestRecord, RequestTarget, Timeouts};
use crate::cli::RunArgs;
use crate::error::RunError;
use crate::openai::{Endpoint, RequestOptions};
use crate::stats::{self, ClientStats, Slo};
use crate::workload::{ArrivalPlan, PromptSource, StopCondition};

/// Bumped whenever a key of the result JSON changes meaning.
pub const RESULT_SCHEMA_VERSION: u32 = 1;
const DEFAULT_REQUESTS: u64 = 100;
const DEFAULT_CONCURRENCY: u32 = 8;

/// What was asked for, recorded beside what happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunPlan {
    pub base_url: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub arrival: ArrivalPlan,
    pub stop: StopCondition,
    pub warmup: u64,
    pub max_tokens: u32,
    pub ignore_eos: bool,
    pub prompts: String,
    pub prompt_tokens_exact: bool,
    pub timeouts: Timeouts,
    pub goodput_slo: Slo,
}

/// The result of one run. Client statistics are flattened into the top level
/// with `vllm bench serve`'s key names so its tooling reads this file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool_version: &'static str,
    pub run_id: String,
    pub date: String,
    pub model_id: String,
    pub num_prompts: u64,
    /// Requests per second asked for; "inf" for a closed loop (as `vllm bench serve`).
    pub request_rate: serde_json::Value,
    pub max_concurrency: Option<u32>,
    pub plan: RunPlan,
    pub started_at: jiff::Timestamp,
    pub ended_at: jiff::Timestamp,
    pub cancelled: bool,
    #[serde(flatten)]
    pub client: ClientStats,
    /// Problems worth a user's attention (bad dataset lines, approximate token counts, ...).
    pub notes: Vec<String>,
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
    /// The clock origin of the records' times (for in-process comparisons).
    #[serde(skip)]
    pub start_instant: Option<std::time::Instant>,
}

impl RunResult {
    /// True when no measured request ever reached the server: the run could not run.
    pub fn target_unreachable(&self) -> bool {
        self.client.num_requests > 0
            && self
                .client
                .errors
                .iter()
                .filter(|(k, _)| matches!(**k, "connect_error" | "connect_timeout"))
                .map(|(_, v)| v)
                .sum::<u64>()
                == self.client.num_requests
    }
}

/// The resolved inputs of a burst, checked before anything is sent.
pub struct Prepared {
    pub spec: LoadSpec,
    pub prompts: Arc<PromptSource>,
    pub plan: RunPlan,
    pub model: String,
    pub slo: Slo,
}

/// Strip a trailing `/v1` so both `http://h:8000` and `http://h:8000/v1` work.
pub fn normalize_base_url(url: &url::Url) -> String {
    let s = url.as_str().trim_end_matches('/');
    s.strip_suffix("/v1").unwrap_or(s).to_owned()
}

pub fn read_api_key(key: Option<&String>, file: Option<&Path>) -> Result<Option<String>, RunError> {
    if let Some(k) = key {
        return Ok(Some(k.trim().to_owned()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::BadInput(format!("cannot read the API key file {}: {e}", path.display())))?;
    let key = text.lines().next().unwrap_or("").trim().to_owned();
    if key.is_empty() {
        return Err(RunError::BadInput(format!(
            "the API key file {} is empty",
            path.display()
        )));
    }
    Ok(Some(key))
}

pub fn http_client(connect_timeout: std::time::Duration, pool: usize) -> Result<reqwest::Client, RunError> {
    reqwest::Client::builder()
        // A benchmark measures the server, not a proxy picked up from the environment.
        .no_proxy()
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| RunError::BadInput(format!("cannot build the HTTP client: {e}")))
}

/// Check every flag and build the burst. Nothing is sent.
pub fn prepare(args: &RunArgs, base_url: &url::Url, model: &str, run_id: &str) -> Result<Prepared, RunError> {
    let base = normalize_base_url(base_url);
    let url = reqwest::Url::parse(&format!("{base}{}", args.endpoint.path()))
        .map_err(|e| RunError::BadInput(format!("bad target URL {base}: {e}")))?;
    let api_key = read_api_key(args.api_key.as_ref(), args.api_key_file.as_deref())?;
    let prompts = PromptSource::from_args(&args.prompts)?;
    let arrival = match args.rate {
        Some(rate) => ArrivalPlan::Rate {
            rate,
            poisson: args.poisson,
            seed: args.prompts.seed,
            max_concurrency: args.concurrency,
        },
        None => ArrivalPlan::Concurrency {
            concurrency: args.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        },
    };
    arrival.check().map_err(RunError::BadInput)?;
    let stop = match (args.duration, args.requests) {
        (Some(d), _) => StopCondition::Duration(d),
        (None, Some(0)) => return Err(RunError::BadInput("--requests must be at least 1".into())),
        (None, Some(n)) => StopCondition::Requests(n),
        (None, None) => StopCondition::Requests(DEFAULT_REQUESTS),
    };
    if args.max_tokens == 0 {
        return Err(RunError::BadInput("--max-tokens must be at least 1".into()));
    }
    if args.first_token_timeout > args.timeout {
        return Err(RunError::BadInput(format!(
            "--first-token-timeout ({}) is longer than --timeout ({})",
            humantime::format_duration(args.first_token_timeout),
            humantime::format_duration(args.timeout)
        )));
    }
    let slo = Slo::parse(&args.goodput).map_err(RunError::BadInput)?;
    let timeouts = Timeouts {
        connect: args.connect_timeout,
        first_token: args.first_token_timeout,
        request: args.timeout,
    };
    let pool = arrival.max_in_flight().unwrap_or(256) as usize;
    let client = http_client(args.connect_timeout, pool)?;
    let stream = !args.no_stream;
    let request = RequestOptions {
        model: model.to_owned(),
        stream,
        max_tokens: Some(args.max_tokens),
        ignore_eos: args.ignore_eos,
        temperature: args.temperature,
        extra_body: args.extra_body.clone(),
    };
    let plan = RunPlan {
        base_url: base,
        endpoint: args.endpoint,
        stream,
        arrival: arrival.clone(),
        stop,
        warmup: args.warmup,
        max_tokens: args.max_tokens,
        ignore_eos: args.ignore_eos,
        prompts: prompts.describe(),
        prompt_tokens_exact: prompts.is_exact(),
        timeouts,
        goodput_slo: slo,
    };
    let target = RequestTarget {
        client,
        url,
        api_key,
        stream,
        timeouts,
        request_id_prefix: format!("{run_id}-"),
    };
    let spec = LoadSpec {
        target: Arc::new(target),
        endpoint: args.endpoint,
        request,
        plan: arrival,
        stop,
        warmup: args.warmup,
    };
    Ok(Prepared {
        spec,
        prompts: Arc::new(prompts),
        plan,
        model: model.to_owned(),
        slo,
    })
}

/// A short, sortable, unique-enough id: UTC time plus random bits.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let ts = now.strftime("%Y%m%dT%H%M%SZ");
    format!("{ts}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Run the load of a prepared burst and assemble its result.
pub async fn run_prepared(
    p: Prepared,
    run_id: String,
    cancel: CancellationToken,
    observer: Option<RecordObserver>,
) -> RunResult {
    let Prepared {
        spec,
        prompts,
        plan,
        model,
        slo,
    } = p;
    let mut notes = Vec::new();
    let skipped = prompts.skipped_lines();
    if !skipped.is_empty() {
        notes.push(format!(
            "{} dataset line(s) skipped; first: {:?}",
            skipped.len(),
            skipped[0]
        ));
    }
    let out = burst::run_load(spec, prompts, cancel, observer).await;
    let client = stats::compute(&out.records, out.duration_s, &out.receive_lag, &slo);
    if !client.tokens_from_usage && client.completed > 0 {
        notes.push("the server sent no `usage`: token counts are chunk counts (approximate)".into());
    }
    notes.extend(client.client_bound.reasons.iter().cloned());
    let (request_rate, max_concurrency) = match &plan.arrival {
        ArrivalPlan::Concurrency { concurrency } => (serde_json::Value::from("inf"), Some(*concurrency)),
        ArrivalPlan::Rate {
            rate, max_concurrency, ..
        } => (serde_json::Value::from(*rate), *max_concurrency),
    };
    RunResult {
        schema_version: RESULT_SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION"),
        run_id,
        date: out.started_unix.strftime("%Y%m%d-%H%M%S").to_string(),
        model_id: model,
        num_prompts: client.num_requests,
        request_rate,
        max_concurrency,
        plan,
        started_at: out.started_unix,
        ended_at: out.ended_unix,
        cancelled: out.cancelled,
        client,
        notes,
        records: out.records,
        start_instant: Some(out.started_at.into_std()),
    }
}

/// Write `bytes` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let err = |source| RunError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// `result.json` and `requests.jsonl` into `dir`.
pub fn save_artifacts(dir: &Path, result: &RunResult) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Write {
        path: dir.to_owned(),
        source,
    })?;
    write_atomic(&dir.join("result.json"), &result_json(result))?;
    let mut lines = Vec::new();
    for r in &result.records {
        // Serializing plain data cannot fail; an empty line would show if it did.
        lines.extend(serde_json::to_vec(r).unwrap_or_default());
        lines.push(b'\n');
    }
    write_atomic(&dir.join("requests.jsonl"), &lines)
}

pub fn result_json(result: &RunResult) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(result).unwrap_or_default();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalization() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(normalize_base_url(&u("http://h:8000")), "http://h:8000");
        assert_eq!(normalize_base_url(&u("http://h:8000/v1/")), "http://h:8000");
        assert_eq!(normalize_base_url(&u("http://h:8000/proxy/v1")), "http://h:8000/proxy");
    }

    #[test]
    fn api_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "sk-secret\n").unwrap();
        assert_eq!(read_api_key(None, Some(&p)).unwrap().as_deref(), Some("sk-secret"));
        std::fs::write(&p, "\n").unwrap();
        assert!(read_api_key(None, Some(&p)).unwrap_err().to_string().contains("empty"));
        let missing = dir.path().join("nope");
        assert!(
            read_api_key(None, Some(&missing))
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
