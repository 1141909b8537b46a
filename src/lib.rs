//! llm-loadtest: load bursts against OpenAI-compatible LLM servers, measured
//! exactly on the client and cross-checked against the server.
//!
//! Modules follow the pipeline in `design.md`; dependencies point down this list.

/// One burst: scheduling, workers, the per-request record, client-side lag probes.
pub mod burst;
/// clap definitions of every subcommand and flag.
pub mod cli;
/// Daemon configuration: TOML file + LLM_LOADTEST__A__B env overrides, strict, every rule checked.
pub mod config;
/// `serve`: scheduled and triggered bursts, the API, /metrics, the history.
pub mod daemon;
/// Docker Engine API: find the server's container, read its log window.
pub mod docker;
/// Preflight checks of a target with a Symptom / Root cause / Evidence / Solution diagnosis.
pub mod doctor;
/// Library error types, each with a bounded label.
pub mod error;
/// Every llm_loadtest_* metric the daemon exports, defined in one place.
pub mod exporter;
/// vLLM log lines (access, engine stats, errors) -> findings (pure).
pub mod logs;
/// Offline commands over saved files: `validate DIR`, `inspect metrics FILE`.
pub mod offline;
/// OpenAI-compatible request bodies and streamed chunk parsing.
pub mod openai;
/// Prometheus exposition-format parser (lenient), snapshot deltas, histogram math.
pub mod promtext;
/// Terminal rendering of a run's summary.
pub mod report;
/// The `run` command end to end: burst, result JSON, artifacts.
pub mod run;
/// Scraping the server's /metrics; the vLLM metric catalogue.
pub mod server;
/// The vLLM-compatible simulator (API, metrics, logs, faults).
pub mod sim;
/// RequestRecord[] -> ClientStats, with `vllm bench serve` definitions (pure).
pub mod stats;
/// Client vs server comparisons, tolerances, verdicts (pure); the validation table.
pub mod validate;
/// Prompts (synthetic, JSONL, ShareGPT) and arrival plans (concurrency, constant, Poisson).
pub mod workload;
