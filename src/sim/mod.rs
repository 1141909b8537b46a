//! The built-in vLLM-compatible simulator: a fake vLLM 0.32 OpenAI server
//! with the real `/metrics` families, log lines and streaming shapes, plus
//! controllable latency and injected faults. Tests and `serve --demo` point
//! the load tester at it; `llm-loadtest sim` runs it standalone.
//!
//! * `config`  – [`SimConfig`], latency/length distributions, [`Faults`];
//! * `engine`  – one request's life: queue, token deadlines, bookkeeping;
//! * `api`     – axum routes, access log, HTTP metrics, stream bodies;
//! * `request` – request validation and vLLM error bodies (pure);
//! * `sse`     – SSE chunk text from per-request templates (pure);
//! * `metrics` – metric state and its vLLM-format text (pure);
//! * `logs`    – vLLM/uvicorn log lines and the stats-interval rule (pure);
//! * `spans`   – the `llm_request` span of each finished request, over OTLP;
//! * `args`    – the `sim` subcommand's flags.
//!
//! Fidelity notes: a `stream_cut` closes the connection, which the engine
//! treats like any client disconnect (abort: tokens counted, no success).
//! Unknown models get the 404 on both routes, but as in real 0.32 only the
//! chat route logs `Error with model …`.

mod api;
mod args;
mod config;
mod engine;
mod logs;
mod metrics;
mod request;
mod spans;
mod sse;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use args::SimArgs;
pub use config::{Faults, LatencyDist, LengthDist, LogSink, SimConfig};

use engine::{Shared, unix_now};
use logs::Level;

/// How long shutdown waits for in-flight responses before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Dropping it without [`SimHandle::shutdown`] stops
/// the server too, without waiting.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<io::Result<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (a wildcard bind is reached over loopback).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("http://{addr}")
    }

    /// Replaces the faults for requests arriving from now on. Rates outside
    /// `[0, 1]` act as clamped; a status below 400 is sent as 500.
    pub fn set_faults(&self, f: Faults) {
        self.shared.faults.send_replace(f);
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.borrow().clone()
    }

    /// Simulates a server restart on `/metrics`: every counter and histogram
    /// back to zero with new `_created` values.
    pub fn reset_counters(&self) {
        self.shared.engine().metrics.reset(unix_now());
    }

    /// When each request's first content chunk was handed to the HTTP body
    /// (for a non-streaming request: its whole reply), keyed by the
    /// request's `X-Request-Id`; filled only with `record_timings`.
    pub fn first_token_instants(&self) -> HashMap<String, Instant> {
        self.shared.first_token_instants()
    }

    /// Stops accepting, ends in-flight streams (connection closed, as when
    /// vLLM aborts on SIGTERM), and waits for the server to finish.
    pub async fn shutdown(mut self) {
        let log = &self.shared.log;
        log.uvicorn("Shutting down");
        self.shared.shutdown.cancel();
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err()
        {
            server.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        // The spans still batched go out now, as vLLM's exporter flushes at exit.
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(s) = &shared.spans {
                s.shutdown();
            }
        })
        .await;
        log.uvicorn("Waiting for application shutdown.");
        log.uvicorn("Application shutdown complete.");
        log.uvicorn(&format!("Finished server process [{}]", log.pid()));
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// Starts the simulator on `bind` (use `127.0.0.1:0` in tests).
pub async fn start(config: SimConfig, bind: SocketAddr) -> io::Result<SimHandle> {
    config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let spans = match &config.otlp_traces_endpoint {
        Some(e) => Some(
            spans::SpanSink::start(e, config.otlp_batch_delay)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared::new(config, spans));
    log_startup(&shared, addr);

    let app = api::router(shared.clone());
    let stop = shared.shutdown.clone();
    // uvicorn's asyncio transports set TCP_NODELAY; without it a token written while the
    // role chunk is unacknowledged waits for the client's delayed ACK (~40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let tasks = vec![tokio::spawn(stats_logger(shared.clone())), tokio::spawn(error_log_bursts(shared.clone()))];
    let log = &shared.log;
    log.uvicorn(&format!("Started server process [{}]", log.pid()));
    log.uvicorn("Waiting for application startup.");
    log.uvicorn("Application startup complete.");
    Ok(SimHandle { addr, shared, server: Some(server), tasks })
}

/// The quiet simulator of `run --demo` and `serve --demo` on a free loopback port, exporting
/// its `llm_request` spans to `otlp` (the demo's own receiver) every second: its handle,
/// base URL and model, or what went wrong.
pub async fn start_demo(otlp: Option<std::net::SocketAddr>) -> Result<(SimHandle, url::Url, String), String> {
    let config = SimConfig {
        log_sink: LogSink::Discard,
        otlp_traces_endpoint: otlp.map(|a| format!("http://{a}")),
        otlp_batch_delay: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let model = config.model.clone();
    let h =
        start(config, ([127, 0, 0, 1], 0).into()).await.map_err(|e| format!("could not start the simulator: {e}"))?;
    match url::Url::parse(&h.base_url()) {
        Ok(url) => Ok((h, url, model)),
        Err(e) => {
            let msg = format!("the simulator's address {} is not a URL: {e}", h.base_url());
            h.shutdown().await;
            Err(msg)
        }
    }
}

/// Errors of the standalone simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator settings: {0}")]
    Config(String),
    #[error("simulator I/O error: {0}")]
    Io(#[from] io::Error),
}

/// `llm-loadtest sim`: serve until Ctrl-C or SIGTERM.
pub async fn run_standalone(args: SimArgs) -> Result<(), SimError> {
    let config = args.to_config().map_err(SimError::Config)?;
    let bind = args.bind_addr().map_err(SimError::Config)?;
    let handle = start(config, bind).await?;
    eprintln!("llm-loadtest sim listening on {}", handle.base_url());
    wait_for_termination().await?;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_termination() -> io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// A few of the lines vLLM 0.32 prints while starting (real file:line sites).
fn log_startup(shared: &Shared, addr: SocketAddr) {
    let c = &shared.config;
    let log = &shared.log;
    log.vllm(
        Level::Info,
        "api_utils.py:286",
        &format!(
            "non-default args: {{'host': '{}', 'port': {}, 'model': '{}', 'max_model_len': {}, 'served_model_name': ['{}']}}",
            addr.ip(),
            addr.port(),
            c.model,
            c.max_model_len,
            c.model
        ),
    );
    log.vllm(Level::Info, "model.py:2152", &format!("Using max model len {}", c.max_model_len));
    log.vllm(Level::Info, "entry.py:140", &format!("Starting vLLM server on http://{addr}"));
    log.vllm(Level::Info, "launcher.py:186", "Available routes are:");
    for (path, methods) in api::ROUTES {
        log.vllm(Level::Info, "launcher.py:195", &format!("Route: {path}, Methods: {methods}"));
    }
}

/// The `Engine 000:` line every `log_stats_interval`, silent when idle.
async fn stats_logger(shared: Arc<Shared>) {
    let period = shared.config.log_stats_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let stats = {
            let mut e = shared.engine();
            let report = e.interval.close(Instant::now());
            (!report.idle).then(|| logs::EngineStats {
                prompt_throughput: report.prompt_throughput,
                generation_throughput: report.generation_throughput,
                running: e.metrics.running,
                waiting: e.metrics.waiting,
                kv_cache_usage: e.metrics.kv_cache_usage(),
                // Nothing is ever served from the simulated prefix cache.
                prefix_cache_hit_rate: e.prefix_cache_queried.then_some(0.0),
            })
        };
        if let Some(stats) = stats {
            shared.log.vllm(Level::Info, logs::STATS_SITE, &logs::engine_stats_message(&stats));
        }
    }
}

/// The `error_log_burst_every` fault: a traceback burst at that period,
/// following runtime changes of the setting.
async fn error_log_bursts(shared: Arc<Shared>) {
    let mut faults = shared.faults.subscribe();
    loop {
        let every = faults.borrow_and_update().error_log_burst_every;
        let burst_due = async {
            match every {
                Some(d) if !d.is_zero() => tokio::time::sleep(d).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = burst_due => shared.log.vllm(
                Level::Error,
                logs::STREAM_ERROR_SITE,
                &logs::stream_error_traceback(),
            ),
            changed = faults.changed() => if changed.is_err() { return },
            _ = shared.shutdown.cancelled() => return,
        }
    }
}
