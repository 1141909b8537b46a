//! The Docker-log checks (PRD FR-6): client requests vs HTTP 200 access
//! lines, client throughput vs the engine-stats lines, ERROR events. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Comparison, Section, Status, Tolerances, compare};
use crate::logs::{LogFindings, generation_throughput_over};
use crate::openai::Endpoint;
use crate::spool::EachRecord;
use crate::stats::ClientStats;

/// vLLM's default stats-log interval (`VLLM_LOG_STATS_INTERVAL`).
pub const STATS_INTERVAL: Duration = Duration::from_secs(10);
/// Least share of the burst the stats lines must cover for a throughput verdict.
pub const MIN_STATS_COVERAGE: f64 = 0.6;

/// What the client saw, in the units of the log checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientLogFigures {
    /// `"POST /v1/chat/completions"`: the access-log endpoint of the burst.
    pub endpoint: String,
    /// Responses that started with HTTP 200 (a stream that failed later still started with 200).
    pub http_200: u64,
    /// Their request indices (the burst's X-Request-Id suffixes).
    pub http_200_indices: BTreeSet<u64>,
    /// The warm-up requests' indices.
    pub warmup_indices: BTreeSet<u64>,
    pub output_tokens_per_s: f64,
    pub load_start: Option<Timestamp>,
    pub load_end: Option<Timestamp>,
}

/// Which container the logs came from and why it was chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The rule that matched (`--container flag`, `published port 8000`, ...).
    pub rule: String,
}

/// The Docker-log section of a validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerLogsValidation {
    #[serde(flatten)]
    pub section: Section,
    /// The server's container; `None` for a fleet, whose containers are in `containers`.
    pub container: Option<ContainerInfo>,
    /// A fleet's containers (more than one), whose logs are judged together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerInfo>,
    /// Access lines of the window by status, every endpoint.
    pub http_status_counts: BTreeMap<String, u64>,
    /// The `inspect logs` summary of the window (access, engine stats, errors).
    pub engine_stats: Option<serde_json::Value>,
    pub error_events: u64,
    pub error_lines: u64,
    pub warnings: u64,
    pub first_errors: Vec<String>,
    pub first_warnings: Vec<String>,
    pub lines: u64,
    /// vLLM's `Received request` lines, when the server logs them (`--enable-log-requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<ReceivedLines>,
}

/// Our requests counted by id in vLLM's `Received request <id>` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedLines {
    /// Every such line of the window.
    pub lines: u64,
    /// Our measured requests named by them, each once.
    pub ours: u64,
    /// Lines of other clients' requests.
    pub other_clients: u64,
    /// Our HTTP 200 requests with no line: how many, and the first indices.
    pub client_without_line: u64,
    pub client_without_line_first: Vec<u64>,
    /// Our requests with a line that the client did not see answered with 200 (first indices).
    pub line_without_client_200: u64,
    pub line_without_client_200_first: Vec<u64>,
}

/// Request indices listed in a reason or a sample.
const MAX_LISTED: usize = 10;

impl DockerLogsValidation {
    pub fn skipped(reason: impl Into<String>, containers: Vec<ContainerInfo>) -> DockerLogsValidation {
        let (container, containers) = one_or_fleet(containers);
        DockerLogsValidation {
            section: Section::skipped(reason),
            container,
            containers,
            http_status_counts: BTreeMap::new(),
            engine_stats: None,
            error_events: 0,
            error_lines: 0,
            warnings: 0,
            first_errors: Vec::new(),
            first_warnings: Vec::new(),
            lines: 0,
            received: None,
        }
    }
}

/// `container` for one container, `containers` for a fleet.
fn one_or_fleet(mut containers: Vec<ContainerInfo>) -> (Option<ContainerInfo>, Vec<ContainerInfo>) {
    if containers.len() == 1 { (containers.pop(), Vec::new()) } else { (None, containers) }
}

/// The exact count of our requests by id, when the log names them.
fn received_request_count(client: &ClientLogFigures, findings: &LogFindings) -> (Comparison, Option<ReceivedLines>) {
    let r = &findings.received;
    if r.lines == 0 {
        let mut c = compare("request_count", Some(client.http_200 as f64), &Err(String::new()), 0.0, 0.0);
        c.reason = Some(
            "no `Received request` lines in the window: start vLLM with --enable-log-requests to count our requests by id"
                .into(),
        );
        return (c, None);
    }
    // Warm-up indices are not the burst's measured requests: out of both sides.
    let ours: BTreeSet<u64> = r.ours.iter().copied().filter(|i| !client.warmup_indices.contains(i)).collect();
    let missing: Vec<u64> = client.http_200_indices.difference(&ours).copied().collect();
    let extra: Vec<u64> = ours.difference(&client.http_200_indices).copied().collect();
    let mut c = compare("request_count", Some(client.http_200 as f64), &Ok(ours.len() as f64), 0.0, 0.0);
    if r.ours_over_limit > 0 {
        c.status = Status::Skip;
        c.reason = Some(format!("{} ids of ours beyond the analyzer's bound were not kept", r.ours_over_limit));
    } else if !missing.is_empty() || !extra.is_empty() {
        c.status = Status::Warn;
        let list = |v: &[u64]| v.iter().take(MAX_LISTED).map(u64::to_string).collect::<Vec<_>>().join(", ");
        c.reason = Some(format!(
            "{} request(s) answered 200 with no `Received request` line (first: {}); {} with a line the client did not see answered 200 (first: {})",
            missing.len(),
            list(&missing),
            extra.len(),
            list(&extra)
        ));
    } else {
        c.reason = Some("every request of ours by id; other clients' lines left out".into());
    }
    let first = |v: &[u64]| v.iter().take(MAX_LISTED).copied().collect();
    let lines = ReceivedLines {
        lines: r.lines,
        ours: ours.len() as u64,
        other_clients: r.others(),
        client_without_line: missing.len() as u64,
        client_without_line_first: first(&missing),
        line_without_client_200: extra.len() as u64,
        line_without_client_200_first: first(&extra),
    };
    (c, Some(lines))
}

/// The log checks of one burst window. `restart` is set when a container
/// restarted during the burst: its logs then cover two processes. The findings
/// of a fleet's containers are one set (counts summed, each replica's stats
/// lines its own engines), judged against the whole burst.
pub fn docker_logs_validation(
    client: &ClientLogFigures,
    findings: &LogFindings,
    containers: Vec<ContainerInfo>,
    restart: Option<String>,
    tol: &Tolerances,
) -> DockerLogsValidation {
    if let Some(why) = restart {
        return DockerLogsValidation::skipped(why, containers);
    }
    let (container, containers) = one_or_fleet(containers);
    let (by_id, received) = received_request_count(client, findings);
    let mut comparisons = vec![by_id];

    let served_200 = findings.access.by_endpoint.get(&client.endpoint).and_then(|s| s.get("200")).copied();
    let mut c = compare(
        "http_200_count",
        Some(client.http_200 as f64),
        &Ok(served_200.unwrap_or(0) as f64),
        tol.http_200_count,
        0.0,
    );
    if findings.access.total == 0 {
        // No access lines at all: uvicorn's access log is off, not a mismatch.
        c.status = Status::Skip;
        c.reason = Some(
            "no HTTP access lines in the window (--disable-uvicorn-access-log, or --uvicorn-log-level above info)"
                .into(),
        );
    } else if c.reason.is_none() {
        // Access lines carry no request id: every client's 200s are in this count.
        c.reason = Some("access lines of every client (they carry no request id)".into());
    }
    comparisons.push(c);

    let throughput = match (client.load_start, client.load_end) {
        (Some(a), Some(b)) => {
            generation_throughput_over(&findings.engine_stats, a, b, STATS_INTERVAL, MIN_STATS_COVERAGE)
        }
        _ => Err("the burst window is unknown".into()),
    };
    let mut c = compare(
        "generation_throughput",
        Some(client.output_tokens_per_s),
        &throughput.as_ref().map(|t| t.tokens_per_s).map_err(|e| format!("engine stats: {e}")),
        tol.generation_throughput,
        0.0,
    );
    if let Ok(t) = &throughput
        && c.status != Status::Skip
    {
        c.reason = Some(format!("{} stats line(s) covering {:.0}% of the burst", t.lines_used, t.coverage * 100.0));
    }
    comparisons.push(c);

    let events = findings.error_events;
    comparisons.push(Comparison {
        check: "server_errors".into(),
        client: None,
        server: Some(events as f64),
        client_compared: None,
        diff_pct: None,
        tolerance: 0.0,
        status: if events == 0 { Status::Pass } else { Status::Warn },
        reason: (events > 0).then(|| {
            let first = findings.first_errors.first().map(String::as_str).unwrap_or("");
            format!("{events} ERROR event(s) in the server log during the burst; first: {first}")
        }),
    });

    DockerLogsValidation {
        section: Section::from_comparisons(comparisons, None),
        container,
        containers,
        http_status_counts: findings.access.by_status.clone(),
        engine_stats: Some(findings.summary_json()["engine_stats"].clone()),
        error_events: events,
        error_lines: findings.error_lines,
        warnings: findings.warning_lines,
        first_errors: findings.first_errors.clone(),
        first_warnings: findings.first_warnings.clone(),
        lines: findings.lines,
        received,
    }
}

/// The client's figures for the log checks; `load` is the measured phase's wall-clock window.
pub fn client_log_figures(
    endpoint: Endpoint,
    stats: &ClientStats,
    records: &(impl EachRecord + ?Sized),
    load: (Timestamp, Timestamp),
) -> ClientLogFigures {
    let (mut http_200_indices, mut warmup_indices) = (BTreeSet::new(), BTreeSet::new());
    records.each(&mut |r| {
        if r.warmup {
            warmup_indices.insert(r.index);
        } else if r.http_status == Some(200) {
            http_200_indices.insert(r.index);
        }
    });
    ClientLogFigures {
        endpoint: format!("POST {}", endpoint.path()),
        // Warm-up requests end before the log window opens.
        http_200: http_200_indices.len() as u64,
        http_200_indices,
        warmup_indices,
        output_tokens_per_s: stats.output_throughput,
        load_start: Some(load.0),
        load_end: Some(load.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{LogAnalyzer, LogLine};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn findings(lines: &[&str]) -> LogFindings {
        let mut a = LogAnalyzer::new().with_request_id_prefix("run1-");
        for l in lines {
            a.feed(&LogLine::from_raw(l));
        }
        a.finish()
    }

    fn client(n: u64, tps: f64) -> ClientLogFigures {
        ClientLogFigures {
            endpoint: "POST /v1/chat/completions".into(),
            http_200: n,
            http_200_indices: (0..n).collect(),
            warmup_indices: BTreeSet::new(),
            output_tokens_per_s: tps,
            load_start: Some(ts("2026-11-23T07:00:05Z")),
            load_end: Some(ts("2026-11-23T07:00:35Z")),
        }
    }

    const ACCESS: &str =
        "2026-11-23T07:00:06.000000001Z INFO:     127.0.0.1:40000 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK";

    fn stats(at: &str, generation: f64) -> String {
        format!(
            "{at} (APIServer pid=7) INFO 11-23 07:00:00 [loggers.py:335] Engine 000: Avg prompt throughput: 10.0 tokens/s, Avg generation throughput: {generation} tokens/s, Running: 4 reqs, Waiting: 0 reqs, GPU KV cache usage: 1.5%, Prefix cache hit rate: 0.0%"
        )
    }

    fn by_check<'a>(v: &'a DockerLogsValidation, name: &str) -> &'a Comparison {
        v.section.comparisons.iter().find(|c| c.check == name).unwrap()
    }

    #[test]
    fn matching_logs_pass() {
        let mut lines: Vec<String> = (0..3).map(|_| ACCESS.to_owned()).collect();
        for (i, at) in ["2026-11-23T07:00:10Z", "2026-11-23T07:00:20Z", "2026-11-23T07:00:30Z", "2026-11-23T07:00:40Z"]
            .iter()
            .enumerate()
        {
            lines.push(stats(at, 100.0 + i as f64));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let v = docker_logs_validation(
            &client(3, 101.0),
            &findings(&refs),
            vec![ContainerInfo::default()],
            None,
            &Tolerances::default(),
        );
        assert_eq!(v.section.status, Status::Pass, "{v:#?}");
        assert_eq!(by_check(&v, "http_200_count").server, Some(3.0));
        assert_eq!(by_check(&v, "generation_throughput").status, Status::Pass);
        assert_eq!(v.http_status_counts.get("200"), Some(&3));
    }

    #[test]
    fn error_events_warn_and_missing_stats_skip() {
        let err = "2026-11-23T07:00:07Z (APIServer pid=7) ERROR 11-23 07:00:07 [serving_chat.py:100] Engine crashed";
        let v = docker_logs_validation(
            &client(1, 50.0),
            &findings(&[ACCESS, err]),
            vec![ContainerInfo::default()],
            None,
            &Tolerances::default(),
        );
        let e = by_check(&v, "server_errors");
        assert_eq!(e.status, Status::Warn);
        assert!(e.reason.as_deref().unwrap().contains("Engine crashed"));
        assert_eq!(by_check(&v, "generation_throughput").status, Status::Skip);
        assert_eq!(v.section.status, Status::Warn);
    }

    #[test]
    fn fewer_200_lines_than_client_responses_warns() {
        let v = docker_logs_validation(
            &client(10, 1.0),
            &findings(&[ACCESS]),
            vec![ContainerInfo::default()],
            None,
            &Tolerances::default(),
        );
        assert_eq!(by_check(&v, "http_200_count").status, Status::Warn);
    }

    #[test]
    fn restart_and_no_access_log_skip() {
        let v = docker_logs_validation(
            &client(1, 1.0),
            &findings(&[ACCESS]),
            vec![ContainerInfo::default()],
            Some("container restarted".into()),
            &Tolerances::default(),
        );
        assert_eq!(v.section.status, Status::Skip);
        assert_eq!(v.section.reason.as_deref(), Some("container restarted"));
        let v = docker_logs_validation(
            &client(1, 1.0),
            &findings(&[]),
            vec![ContainerInfo::default()],
            None,
            &Tolerances::default(),
        );
        assert_eq!(by_check(&v, "http_200_count").status, Status::Skip);
    }

    fn received(id: &str) -> String {
        format!(
            "2026-11-23T07:00:06Z (APIServer pid=7) INFO 11-23 07:00:06 [request_logger.py:65] Received request {id}: params: SamplingParams(n=1, temperature=1.0), lora_request: None."
        )
    }

    /// One container's part of a fleet's saved window.
    fn replica_part(name: &str, lines: &[String]) -> String {
        let mut part = crate::logs::replica_header(name);
        for l in lines {
            part.push('\n');
            part.push_str(l);
        }
        part
    }

    #[test]
    fn a_fleets_logs_are_judged_together_each_replica_its_own_engines() {
        // Two replicas, both `Engine 000`, each generating 100 tokens/s over the burst: the
        // fleet generated 200 tokens/s. Each answered and logged two of our four requests.
        let part = |name: &str, ids: [u64; 2]| {
            let mut lines: Vec<String> =
                ["2026-11-23T07:00:05Z", "2026-11-23T07:00:15Z", "2026-11-23T07:00:25Z", "2026-11-23T07:00:35Z"]
                    .iter()
                    .map(|at| stats(at, 100.0))
                    .collect();
            lines.extend(ids.map(|i| received(&format!("chatcmpl-run1-{i}"))));
            lines.extend([ACCESS.to_owned(), ACCESS.to_owned()]);
            replica_part(name, &lines)
        };
        let text = format!("{}\n{}\n", part("vllm-0", [0, 1]), part("vllm-1", [2, 3]));
        let f = crate::logs::analyze_fleet_text_with(&text, LogAnalyzer::new().with_request_id_prefix("run1-"));
        assert_eq!(f.engine_stats_summary.engines, Some(2), "{f:#?}");
        let containers = vec![
            ContainerInfo { name: "vllm-0".into(), ..ContainerInfo::default() },
            ContainerInfo { name: "vllm-1".into(), ..ContainerInfo::default() },
        ];
        let v = docker_logs_validation(&client(4, 200.0), &f, containers.clone(), None, &Tolerances::default());
        assert_eq!(v.section.status, Status::Pass, "{v:#?}");
        assert_eq!(by_check(&v, "generation_throughput").server, Some(200.0), "{v:#?}");
        assert_eq!(by_check(&v, "request_count").server, Some(4.0));
        assert_eq!(by_check(&v, "http_200_count").server, Some(4.0));
        assert_eq!((v.container.as_ref(), v.containers.len()), (None, 2));
        // The same lines read as one server would be one engine at 100 tokens/s: a WARN.
        let one = crate::logs::analyze_text_with(&text, LogAnalyzer::new().with_request_id_prefix("run1-"));
        let v = docker_logs_validation(&client(4, 200.0), &one, containers, None, &Tolerances::default());
        assert_eq!(by_check(&v, "generation_throughput").status, Status::Warn, "{v:#?}");
    }

    #[test]
    fn our_requests_are_counted_by_id_and_other_clients_lines_are_left_out() {
        let mut lines = vec![received("chatcmpl-run1-0"), received("chatcmpl-run1-1"), received("cmpl-run1-2-0")];
        // Other clients, a repeat of ours, and a warm-up request of ours.
        lines.extend([received("chatcmpl-9f8e7d6c"), received("chatcmpl-run2-1"), received("chatcmpl-run1-1")]);
        lines.push(received("chatcmpl-run1-7"));
        lines.extend((0..5).map(|_| ACCESS.to_owned()));
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut c = client(3, 1.0);
        c.warmup_indices = BTreeSet::from([7]);
        let v =
            docker_logs_validation(&c, &findings(&refs), vec![ContainerInfo::default()], None, &Tolerances::default());
        let by_id = by_check(&v, "request_count");
        assert_eq!((by_id.status, by_id.client, by_id.server), (Status::Pass, Some(3.0), Some(3.0)), "{by_id:?}");
        let r = v.received.as_ref().unwrap();
        assert_eq!((r.lines, r.ours, r.other_clients), (7, 3, 2));
        // The access lines count every client: 5 against our 3, and they say so.
        let access = by_check(&v, "http_200_count");
        assert_eq!(access.status, Status::Warn);
        assert!(access.reason.as_deref().unwrap().contains("every client"), "{access:?}");
    }

    #[test]
    fn a_request_answered_200_without_its_received_line_warns_by_index() {
        let lines = [received("chatcmpl-run1-0"), received("chatcmpl-run1-2"), ACCESS.to_owned()];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let v = docker_logs_validation(
            &client(3, 1.0),
            &findings(&refs),
            vec![ContainerInfo::default()],
            None,
            &Tolerances::default(),
        );
        let by_id = by_check(&v, "request_count");
        assert_eq!(by_id.status, Status::Warn);
        assert!(
            by_id
                .reason
                .as_deref()
                .unwrap()
                .starts_with("1 request(s) answered 200 with no `Received request` line (first: 1)"),
            "{by_id:?}"
        );
        assert_eq!(v.received.as_ref().unwrap().client_without_line_first, vec![1]);
    }

    #[test]
    fn without_received_lines_the_id_count_skips_and_says_how_to_get_it() {
        let v = docker_logs_validation(
            &client(1, 1.0),
            &findings(&[ACCESS]),
            vec![ContainerInfo::default()],
            None,
            &Tolerances::default(),
        );
        let by_id = by_check(&v, "request_count");
        assert_eq!(by_id.status, Status::Skip);
        assert!(by_id.reason.as_deref().unwrap().contains("--enable-log-requests"));
        assert_eq!(v.received, None);
        assert_eq!(by_check(&v, "http_200_count").status, Status::Pass);
    }
}
