//! Command-line flags of `llm-loadtest sim`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::config::{Faults, LatencyDist, LengthDist, LogSink, SimConfig};

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))
}

/// Flags of the standalone simulator.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Served model name; requests naming another model get vLLM's 404.
    #[arg(long, default_value = "sim-model")]
    pub model: String,
    /// Time to first token in ms: `50`, or uniform `40..60`.
    #[arg(long, value_name = "MS|MIN..MAX", default_value = "50", value_parser = LatencyDist::parse_ms)]
    pub ttft_ms: LatencyDist,
    /// Inter-token latency in ms: `10`, or uniform `5..15`.
    #[arg(long, value_name = "MS|MIN..MAX", default_value = "10", value_parser = LatencyDist::parse_ms)]
    pub itl_ms: LatencyDist,
    /// Tokens generated before EOS unless `ignore_eos`/`max_tokens` decide: `64` or `32..128`.
    #[arg(long, value_name = "N|MIN..MAX", default_value = "64", value_parser = LengthDist::parse)]
    pub output_tokens: LengthDist,
    /// Requests generating at once; later requests queue FIFO (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub max_running: usize,
    /// Context length (prompt + output), as vLLM's `--max-model-len`.
    #[arg(long, default_value_t = 4096)]
    pub max_model_len: u32,
    /// KV-cache size in tokens (drives `vllm:kv_cache_usage_perc`).
    #[arg(long, default_value_t = 65_536)]
    pub kv_cache_tokens: u64,
    /// Seed of every random choice (token text, lengths, faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Period of the `Engine 000:` stats log line (`VLLM_LOG_STATS_INTERVAL`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub log_stats_interval: Duration,
    /// Fraction of completion requests answered with `--fault-http-status`.
    #[arg(long, default_value_t = 0.0)]
    pub fault_http_error_rate: f64,
    /// Status of injected HTTP errors.
    #[arg(long, default_value_t = 500)]
    pub fault_http_status: u16,
    /// Fraction of requests served but left out of `/metrics` (metric drift).
    #[arg(long, default_value_t = 0.0)]
    pub fault_drop_metrics_rate: f64,
    /// Fraction of streams cut mid-generation (no `[DONE]`).
    #[arg(long, default_value_t = 0.0)]
    pub fault_stream_cut_rate: f64,
    /// Write a vLLM-shaped ERROR traceback this often (e.g. `30s`).
    #[arg(long, value_parser = parse_duration)]
    pub fault_error_log_every: Option<Duration>,
    /// Fraction of finished requests whose `llm_request` span is never exported.
    #[arg(long, default_value_t = 0.0)]
    pub fault_drop_spans_rate: f64,
    /// Milliseconds added to every time to first token (a server that got slower).
    #[arg(long, default_value_t = 0)]
    pub fault_extra_ttft_ms: u64,
    /// Log `Received request <id>: params: ...` for every request, as vLLM does with this flag.
    #[arg(long)]
    pub enable_log_requests: bool,
    /// Export one `llm_request` span per finished request over OTLP, as vLLM does with this
    /// flag: gRPC (`http://HOST:4317`), or HTTP/protobuf (`http://HOST:4318/v1/traces`) with
    /// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf.
    #[arg(long, value_name = "URL")]
    pub otlp_traces_endpoint: Option<url::Url>,
    /// How often spans are sent in a batch (OpenTelemetry's and so vLLM's default: 5s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub otlp_batch_delay: Duration,
}

impl SimArgs {
    pub fn to_config(&self) -> Result<SimConfig, String> {
        let config = SimConfig {
            model: self.model.clone(),
            ttft: self.ttft_ms,
            itl: self.itl_ms,
            output_tokens: self.output_tokens,
            max_running: self.max_running,
            max_model_len: self.max_model_len,
            log_stats_interval: self.log_stats_interval,
            log_sink: LogSink::Stdout,
            seed: self.seed,
            faults: Faults {
                http_error_rate: self.fault_http_error_rate,
                http_error_status: self.fault_http_status,
                drop_from_metrics_rate: self.fault_drop_metrics_rate,
                stream_cut_rate: self.fault_stream_cut_rate,
                error_log_burst_every: self.fault_error_log_every,
                drop_spans_rate: self.fault_drop_spans_rate,
                extra_ttft_ms: self.fault_extra_ttft_ms,
            },
            record_timings: false,
            kv_cache_tokens: self.kv_cache_tokens,
            log_requests: self.enable_log_requests,
            otlp_traces_endpoint: self.otlp_traces_endpoint.as_ref().map(|u| u.as_str().to_owned()),
            otlp_batch_delay: self.otlp_batch_delay,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let host = self.host.trim_matches(|c| c == '[' || c == ']');
        let spec = if host.contains(':') { format!("[{host}]:{}", self.port) } else { format!("{host}:{}", self.port) };
        spec.to_socket_addrs()
            .map_err(|e| format!("cannot resolve --host {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("--host {} resolves to no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|c| c.sim)
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.port, 8000);
        assert_eq!(a.bind_addr().unwrap(), "127.0.0.1:8000".parse().unwrap());
        let c = a.to_config().unwrap();
        assert_eq!(c.model, "sim-model");
        assert_eq!(c.ttft, LatencyDist::Fixed(Duration::from_millis(50)));
        assert_eq!(c.itl, LatencyDist::Fixed(Duration::from_millis(10)));
        assert_eq!(c.output_tokens, LengthDist::Fixed(64));
        assert_eq!(c.log_stats_interval, Duration::from_secs(10));
        assert_eq!(c.faults, Faults::default());
    }

    #[test]
    fn ranges_faults_and_durations_parse() {
        let a = parse(&[
            "--port",
            "0",
            "--ttft-ms",
            "40..60",
            "--itl-ms",
            "0",
            "--output-tokens",
            "8..16",
            "--log-stats-interval",
            "2s",
            "--fault-http-error-rate",
            "0.1",
            "--fault-http-status",
            "503",
            "--fault-error-log-every",
            "1m",
        ])
        .unwrap();
        let c = a.to_config().unwrap();
        assert_eq!(c.ttft, LatencyDist::Uniform { min: Duration::from_millis(40), max: Duration::from_millis(60) });
        assert!(c.itl.is_zero());
        assert_eq!(c.output_tokens, LengthDist::Uniform { min: 8, max: 16 });
        assert_eq!(c.log_stats_interval, Duration::from_secs(2));
        assert_eq!(c.faults.http_error_status, 503);
        assert_eq!(c.faults.error_log_burst_every, Some(Duration::from_secs(60)));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--ttft-ms", "fast"]).is_err());
        assert!(parse(&["--output-tokens", "0"]).is_err());
        let a = parse(&["--fault-stream-cut-rate", "2"]).unwrap();
        assert!(a.to_config().is_err());
        let ipv6 = parse(&["--host", "::1", "--port", "9"]).unwrap();
        assert_eq!(ipv6.bind_addr().unwrap(), "[::1]:9".parse().unwrap());
    }
}
