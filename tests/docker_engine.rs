//! `llm_loadtest::docker` against the real Docker Engine. Ignored by default:
//! scripts/test.sh starts dockerd (shared/docker/ensure-dockerd.sh), builds the
//! image llm-loadtest:local (scripts/build-sim-image.sh) and runs these with
//! `--include-ignored`; without an engine they FAIL.
//!
//! Every container is named `llt-test-<what>-<pid>-<n>`, runs with
//! `--network host`, and is removed by a guard on drop (also on failure).

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
mod common;

use common::docker::docker;
use llm_loadtest::docker::{DockerClient, DockerError, Stream, TARGET_PORT_LABEL, TimedLine};

const BUSYBOX: &str = "local/busybox:latest";
const SIM_IMAGE: &str = "llm-loadtest:local";

/// A test container removed (`docker rm -f`) when dropped.
struct Container {
    name: String,
    id: String,
}

impl Container {
    /// `docker run -d --network host --name <unique> EXTRA... IMAGE ARGS...`
    fn run(what: &str, extra: &[&str], image: &str, args: &[&str]) -> Container {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("llt-test-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut all = vec!["run", "-d", "--network", "host", "--name", name.as_str()];
        all.extend_from_slice(extra);
        all.push(image);
        all.extend_from_slice(args);
        // Guard first, so a half-created container is removed too.
        let mut c = Container { name: name.clone(), id: String::new() };
        c.id = docker(&all);
        c
    }

    /// Waits for the container to exit.
    fn wait(&self) {
        docker(&["wait", &self.name]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}

async fn client() -> DockerClient {
    match DockerClient::connect().await {
        Ok(c) => c,
        Err(e) => panic!("these tests need a Docker Engine ({e}); run scripts/test.sh"),
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn window_vec(c: &DockerClient, id: &str, from: Timestamp, to: Timestamp) -> Vec<TimedLine> {
    let mut out = Vec::new();
    c.window(id, from, to, &mut |l| out.push(l)).await.expect("window");
    out
}

fn texts(lines: &[TimedLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

fn ts(l: &TimedLine) -> Timestamp {
    l.ts.expect("every line from the engine has a timestamp")
}

fn assert_time_ordered(lines: &[TimedLine]) {
    for w in lines.windows(2) {
        assert!(ts(&w[0]) <= ts(&w[1]), "out of order: {:?} then {:?}", w[0], w[1]);
    }
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn window_is_exact_to_the_nanosecond_across_both_streams() {
    let c = client().await;
    let ct = Container::run(
        "window",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "echo x1; sleep 0.3; echo x2 >&2; sleep 0.3; echo x3; sleep 0.3; echo x4 >&2; sleep 0.3; echo x5",
        ],
    );
    ct.wait();
    let all = c.tail(&ct.id, 100).await.expect("tail");
    assert_eq!(texts(&all), ["x1", "x2", "x3", "x4", "x5"]);
    let streams: Vec<Stream> = all.iter().map(|l| l.stream).collect();
    assert_eq!(streams, [Stream::Stdout, Stream::Stderr, Stream::Stdout, Stream::Stderr, Stream::Stdout]);
    assert_time_ordered(&all);

    // Bounds on lines: inclusive.
    let got = window_vec(&c, &ct.id, ts(&all[1]), ts(&all[3])).await;
    assert_eq!(texts(&got), ["x2", "x3", "x4"]);
    assert_eq!(got, all[1..4].to_vec());

    // Bounds a nanosecond inside the neighbours (same whole second or the next).
    let ns = SignedDuration::from_nanos(1);
    let mut stats_out = Vec::new();
    let stats = c.window(&ct.id, ts(&all[0]) + ns, ts(&all[4]) - ns, &mut |l| stats_out.push(l)).await.expect("window");
    assert_eq!(texts(&stats_out), ["x2", "x3", "x4"]);
    assert_eq!((stats.delivered, stats.outside), (3, 2), "{stats:?}");

    // A sub-second window between two lines holds nothing.
    let got = window_vec(&c, &ct.id, ts(&all[1]) + ns, ts(&all[2]) - ns).await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn interleaved_stdout_and_stderr_come_out_in_timestamp_order() {
    let c = client().await;
    let script = "i=0; while [ $i -lt 3000 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done";
    let ct = Container::run("interleave", &[], BUSYBOX, &["sh", "-c", script]);
    ct.wait();
    let from = Timestamp::now() - SignedDuration::from_secs(600);
    let mut lines = Vec::new();
    let stats = c.window(&ct.id, from, Timestamp::now(), &mut |l| lines.push(l)).await.expect("window");
    println!("interleaved: {stats:?}");
    assert_eq!(lines.len(), 6000);
    assert_time_ordered(&lines);
    assert_eq!(stats.late, 0);
    let out: Vec<&str> = lines.iter().filter(|l| l.stream == Stream::Stdout).map(|l| l.text.as_str()).collect();
    let err: Vec<&str> = lines.iter().filter(|l| l.stream == Stream::Stderr).map(|l| l.text.as_str()).collect();
    assert_eq!(out, (0..3000).map(|i| format!("o{i}")).collect::<Vec<_>>());
    assert_eq!(err, (0..3000).map(|i| format!("e{i}")).collect::<Vec<_>>());
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn tty_container_lines_are_split_and_clean() {
    let c = client().await;
    let script = r#"echo t1; echo t2 >&2; printf "%040000d\n" 7; echo t3"#;
    let ct = Container::run("tty", &["-t"], BUSYBOX, &["sh", "-c", script]);
    ct.wait();
    let all = c.tail(&ct.id, 100).await.expect("tail");
    let long = format!("{:040000}", 7);
    assert_eq!(texts(&all), ["t1", "t2", long.as_str(), "t3"]);
    assert!(all.iter().all(|l| l.stream == Stream::Console), "{:?}", all.iter().map(|l| l.stream).collect::<Vec<_>>());
    let got = window_vec(&c, &ct.id, ts(&all[0]), ts(&all[3])).await;
    assert_eq!(got, all);
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn lines_longer_than_16k_arrive_whole_on_both_streams() {
    let c = client().await;
    let script = r#"echo before; printf "%040000d\n" 7; printf "%020000d" 5 >&2; echo end >&2; echo after"#;
    let ct = Container::run("long", &[], BUSYBOX, &["sh", "-c", script]);
    ct.wait();
    let from = Timestamp::now() - SignedDuration::from_secs(600);
    let mut got = Vec::new();
    let stats = c.window(&ct.id, from, Timestamp::now(), &mut |l| got.push(l)).await.expect("window");
    let out: Vec<&str> = got.iter().filter(|l| l.stream == Stream::Stdout).map(|l| l.text.as_str()).collect();
    let err: Vec<&str> = got.iter().filter(|l| l.stream == Stream::Stderr).map(|l| l.text.as_str()).collect();
    let long_out = format!("{:040000}", 7);
    let long_err = format!("{:020000}end", 5);
    assert_eq!(out, ["before", long_out.as_str(), "after"]);
    assert_eq!(err, [long_err.as_str()]);
    assert_eq!(stats.delivered, 4);
    assert_time_ordered(&got);
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn tail_returns_the_last_lines() {
    let c = client().await;
    let ct = Container::run("tail", &[], BUSYBOX, &["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo line$i; done"]);
    ct.wait();
    let last = c.tail(&ct.id, 5).await.expect("tail");
    assert_eq!(texts(&last), ["line6", "line7", "line8", "line9", "line10"]);
    assert!(c.tail(&ct.id, 0).await.expect("tail 0").is_empty());
    assert_eq!(c.tail(&ct.id, 1000).await.expect("tail").len(), 10);
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn find_container_by_name_id_label_and_port_in_the_command() {
    let c = client().await;
    let sleeper = Container::run("find-named", &[], BUSYBOX, &["sleep", "300"]);

    let by_name = c.find_container(Some(&sleeper.name), 1).await.expect("by name");
    assert_eq!((by_name.id.as_str(), by_name.name.as_str()), (sleeper.id.as_str(), sleeper.name.as_str()));
    assert_eq!(by_name.rule, "--container flag");
    assert_eq!(by_name.image, BUSYBOX);
    assert!(by_name.state.running);
    let by_id = c.find_container(Some(&sleeper.id[..12]), 1).await.expect("by short id");
    assert_eq!(by_id.id, sleeper.id);

    // The simulator image, host network, publishes nothing: found by --port.
    let port = free_port();
    let port_s = port.to_string();
    let sim = Container::run("find-sim", &[], SIM_IMAGE, &["sim", "--port", &port_s, "--host", "127.0.0.1"]);
    let found = c.find_container(None, port).await.expect("sim by --port");
    assert_eq!(found.id, sim.id);
    assert_eq!(found.name, sim.name);
    assert_eq!(found.rule, format!("--port {port} in the command"));
    assert_eq!(found.image, SIM_IMAGE);

    // A container that shows no port anywhere: the label.
    let lport = free_port();
    let label = format!("{TARGET_PORT_LABEL}={lport}");
    let labelled = Container::run("find-label", &["--label", &label], BUSYBOX, &["sleep", "300"]);
    let found = c.find_container(None, lport).await.expect("by label");
    assert_eq!(found.id, labelled.id);
    assert_eq!(found.rule, format!("label {label}"));
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn find_container_errors_name_what_was_seen() {
    let c = client().await;
    let missing = format!("llt-test-missing-{}", std::process::id());
    let e = c.find_container(Some(&missing), 1).await.expect_err("missing name");
    assert_eq!(e.as_label(), "not_found", "{e}");
    assert!(e.to_string().contains(&missing), "{e}");

    let exited = Container::run("find-exited", &[], BUSYBOX, &["sh", "-c", "exit 0"]);
    exited.wait();
    let e = c.find_container(Some(&exited.name), 1).await.expect_err("exited");
    assert!(matches!(e, DockerError::NotRunning(_)), "{e}");
    assert!(e.to_string().contains("exited (exit code 0)"), "{e}");

    let port = free_port();
    let label = format!("{TARGET_PORT_LABEL}={port}");
    let a = Container::run("find-amb", &["--label", &label], BUSYBOX, &["sleep", "300"]);
    let b = Container::run("find-amb", &["--label", &label], BUSYBOX, &["sleep", "300"]);
    let e = c.find_container(None, port).await.expect_err("two labelled");
    assert_eq!(e.as_label(), "ambiguous", "{e}");
    assert!(e.to_string().contains(&a.name) && e.to_string().contains(&b.name), "{e}");

    let nobody = free_port();
    let e = c.find_container(None, nobody).await.expect_err("nothing serves it");
    assert_eq!(e.as_label(), "not_found", "{e}");
    // The running containers are listed so the user can pick one.
    assert!(e.to_string().contains(&a.name), "{e}");
    println!("{e}");

    // A fleet by label: both labelled containers, by name; an unused label is not found.
    let fleet = c.find_by_label(&label).await.expect("two labelled");
    let mut names = vec![a.name.clone(), b.name.clone()];
    names.sort();
    assert_eq!(fleet.iter().map(|f| f.name.clone()).collect::<Vec<_>>(), names);
    let none = format!("llt-no-such-label={}", std::process::id());
    let e = c.find_by_label(&none).await.expect_err("no container has it");
    assert_eq!(e.as_label(), "not_found", "{e}");
    assert!(e.to_string().contains(&none), "{e}");
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn state_shows_a_restart() {
    let c = client().await;
    let ct = Container::run("state", &[], BUSYBOX, &["sleep", "300"]);
    let before = c.state(&ct.id).await.expect("state");
    assert!(before.running);
    assert_eq!(before.status, "running");
    let started = before.started_at.expect("started_at");
    assert!(Timestamp::now().duration_since(started).abs() < SignedDuration::from_secs(120), "{started}");

    docker(&["restart", "-t", "0", &ct.name]);
    let after = c.state(&ct.id).await.expect("state");
    assert!(after.running);
    assert!(after.started_at > before.started_at, "{before:?} -> {after:?}");
    assert!(after.restarted_since(&before));
    // `docker restart` is not a restart-policy restart: the count stays.
    assert_eq!(after.restart_count, before.restart_count);

    docker(&["kill", &ct.name]);
    let killed = c.state(&ct.id).await.expect("state");
    assert!(!killed.running && killed.restarted_since(&before), "{killed:?}");
    assert_eq!(killed.exit_code, Some(137));
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn restart_policy_increments_restart_count() {
    let c = client().await;
    let ct = Container::run("policy", &["--restart", "on-failure:3"], BUSYBOX, &["sh", "-c", "sleep 0.2; exit 1"]);
    let first = c.state(&ct.id).await.expect("state");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = first.clone();
    while now.restart_count == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = c.state(&ct.id).await.expect("state");
    }
    assert!(now.restart_count >= 1, "{now:?}");
    assert!(now.restarted_since(&first));
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn sim_container_logs_its_requests() {
    let c = client().await;
    let port = free_port();
    let port_s = port.to_string();
    // Taken before the start: on a dockerd busy with the other tests, `docker run -d` may return
    // after the startup line was written.
    let t0 = Timestamp::now();
    let sim = Container::run("sim-logs", &[], SIM_IMAGE, &["sim", "--port", &port_s, "--host", "127.0.0.1"]);
    // Wait until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let req = format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "the simulator container did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The access line is written as the response starts: polled, not waited for a fixed time.
    let has = |got: &[TimedLine], text: &str| got.iter().any(|l| l.text.contains(text));
    let access = "\"GET /v1/models HTTP/1.1\" 200";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = window_vec(&c, &sim.id, t0 - SignedDuration::from_secs(1), Timestamp::now()).await;
    while !(has(&got, "Starting vLLM server") && has(&got, access)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        got = window_vec(&c, &sim.id, t0 - SignedDuration::from_secs(1), Timestamp::now()).await;
    }
    assert!(got.iter().any(|l| l.text.contains("Starting vLLM server")), "{:?}", texts(&got));
    assert!(got.iter().any(|l| l.text.contains("\"GET /v1/models HTTP/1.1\" 200")), "{:?}", texts(&got));
    assert_time_ordered(&got);
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn a_window_of_100k_lines_streams_with_bounded_memory() {
    const N: usize = 100_000;
    let c = client().await;
    // vLLM-sized lines (~140 bytes), one in ten on stderr.
    let script = format!(
        "i=0; while [ $i -lt {N} ]; do \
           if [ $((i % 10)) -eq 9 ]; then echo \"ERR $i Traceback (most recent call last): something failed in the engine core loop\" >&2; \
           else echo \"(APIServer pid=1) INFO 11-23 07:30:49 [loggers.py:123] line $i: Avg prompt throughput: 12.3 tokens/s, Running: 4 reqs\"; fi; \
           i=$((i+1)); done; sleep 2; echo late1; echo late2 >&2"
    );
    let ct = Container::run("100k", &[], BUSYBOX, &["sh", "-c", &script]);
    ct.wait();
    let first = c.tail(&ct.id, N + 2).await.expect("tail").first().map(ts).expect("a first line");
    let end = c.tail(&ct.id, 3).await.expect("tail");
    // late1 (stdout) and late2 (stderr): across streams Docker may store them in either order.
    let mut late = texts(&end[1..]);
    late.sort_unstable();
    assert_eq!(late, ["late1", "late2"]);
    let last = ts(&end[0]);
    let hwm_before = vm_hwm_kib();

    // Docker stamps a line when its copier reads the pipe, so across streams
    // the time order can differ from the write order by a few lines; within a
    // stream it cannot. Check: time order overall, write order per stream, all there.
    let mut count = 0usize;
    let mut seen = vec![false; N];
    let mut last_of = [None::<usize>; 2];
    let mut prev: Option<Timestamp> = None;
    let mut first_at: Option<Duration> = None;
    let started = Instant::now();
    let stats = c
        .window(&ct.id, first, last, &mut |l| {
            first_at.get_or_insert_with(|| started.elapsed());
            let n = line_no(&l.text);
            let slot = usize::from(l.stream == Stream::Stderr);
            assert!(n < N && !seen[n], "unexpected or repeated line {:?}", l.text);
            assert!(last_of[slot].is_none_or(|p| p < n), "{:?} after line {:?} of its stream", l.text, last_of[slot]);
            assert_eq!(l.stream == Stream::Stderr, n % 10 == 9, "{:?} on {:?}", l.text, l.stream);
            seen[n] = true;
            last_of[slot] = Some(n);
            assert!(prev.is_none_or(|p| p <= ts(&l)), "time order broken at {:?}", l.text);
            prev = l.ts;
            count += 1;
        })
        .await
        .expect("window");
    let elapsed = started.elapsed();
    let hwm_after = vm_hwm_kib();
    println!(
        "100k window: {count} lines, {} bytes in {elapsed:?} (first line after {:?}); {stats:?}; peak RSS {hwm_before} -> {hwm_after} KiB",
        stats.bytes,
        first_at.unwrap_or_default()
    );
    assert_eq!(count, N);
    assert_eq!(stats.delivered, N as u64);
    assert_eq!(stats.late, 0);
    // Delivered while reading, not collected first.
    assert!(first_at.unwrap_or_default() < elapsed / 2, "first line at {first_at:?} of {elapsed:?}");
    // The log starts inside this window: no tail can prove it covers it.
    assert!(stats.full_scan);

    // A recent window at the end of this long log: a tail covers it, and the
    // 100,000 lines before it are not read.
    let started = Instant::now();
    let mut recent = Vec::new();
    let from = ts(&end[1]) - SignedDuration::from_millis(500);
    let stats = c.window(&ct.id, from, Timestamp::now(), &mut |l| recent.push(l)).await.expect("window");
    println!("recent window at the end of the 100k log: {:?}; {stats:?}", started.elapsed());
    // Across streams Docker may store the two in either order (as above).
    let mut recent_texts = texts(&recent);
    recent_texts.sort_unstable();
    assert_eq!(recent_texts, ["late1", "late2"]);
    assert!(!stats.full_scan, "{stats:?}");
    assert!(stats.outside <= 20_000, "{stats:?}");
}

/// The line number in the 100k test's lines (`ERR 123 ...` or `... line 123: ...`).
fn line_no(text: &str) -> usize {
    let n = match text.strip_prefix("ERR ") {
        Some(rest) => rest.split(' ').next(),
        None => text.split("line ").nth(1).and_then(|r| r.split(':').next()),
    };
    n.and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)
}

/// Peak resident memory of this process (all tests in it), KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs a Docker Engine: run scripts/test.sh"]
async fn gone_container_is_not_found() {
    let c = client().await;
    let ct = Container::run("gone", &[], BUSYBOX, &["sh", "-c", "exit 0"]);
    ct.wait();
    let id = ct.id.clone();
    drop(ct);
    let e = c.state(&id).await.expect_err("removed");
    assert_eq!(e.as_label(), "not_found", "{e}");
    let e = c.tail(&id, 5).await.expect_err("removed");
    assert_eq!(e.as_label(), "not_found", "{e}");
    let mut sink = |_l: TimedLine| {};
    let e = c.window(&id, Timestamp::now(), Timestamp::now(), &mut sink).await.expect_err("removed");
    assert_eq!(e.as_label(), "not_found", "{e}");
}
