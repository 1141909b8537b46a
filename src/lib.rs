//! llm-loadtest: load bursts against OpenAI-compatible LLM servers, measured
//! exactly on the client and cross-checked against the server.
//!
//! Modules follow the pipeline in `design.md`; dependencies point down this list.

/// A run on disk: the result schema, the one writer and the one typed reader of a run directory.
pub mod artifacts;
/// One burst, start to result: the plan, the load, the server observed around it (the only sequencer).
pub mod burst;
/// clap definitions of every subcommand and flag.
pub mod cli;
/// Daemon configuration: TOML file + LLM_LOADTEST__A__B env overrides, strict, every rule checked.
pub mod config;

pub mod coordinator;
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
/// The one HTTP client builder (no proxy, timeouts).
pub mod http;
/// vLLM log lines (access, engine stats, errors) -> findings (pure).
pub mod logs;
/// `merge`: the shards of one burst joined into one result, statistics from the union of their records.
pub mod merge;
/// Offline commands over saved files: `validate DIR`, `inspect metrics FILE`.
pub mod offline;
/// OpenAI-compatible request bodies and streamed chunk parsing.
pub mod openai;
/// Prometheus exposition-format parser (lenient), snapshot deltas, histogram math.
pub mod promtext;
/// The ground floor: what one request measured, and the client's receive lag (plain data).
pub mod record;
/// Terminal rendering of a run's summary.
pub mod report;
/// The `run` command's glue: flags to a burst plan, then summary, files, exit code.
pub mod run;
/// Scraping the server's /metrics; the vLLM metric catalogue and the figures of two snapshots.
pub mod server;
/// The vLLM-compatible simulator (API, metrics, logs, faults).
pub mod sim;
/// A run's records out of memory: streamed to a spool file as they finish, read back in passes.
pub mod spool;
/// RequestRecord[] -> ClientStats, with `vllm bench serve` definitions (pure).
pub mod stats;
/// Log set-up (text or JSON on stderr).
pub mod telemetry;
/// OTLP trace receiver and vLLM's `llm_request` spans, routed to the burst they belong to.
pub mod traces;
/// Client vs server: the Prometheus and log sections, one `assess`, verdicts (pure); the table.
pub mod validate;
/// The typed workload (defaults, rules, patches), prompts (synthetic, JSONL, ShareGPT), arrival plans.
pub mod workload;
