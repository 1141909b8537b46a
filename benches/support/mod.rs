//! What the process-level benchmarks share: a free loopback port, this process's memory from
//! /proc, and a simulator in its own process.
#![allow(dead_code)] // each benchmark uses the helpers it needs

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_llm-loadtest");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `/proc/self/status` figure in kB (`VmRSS:`, `VmHWM:`), as MiB.
pub fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// `llm-loadtest sim` on 127.0.0.1:`port` with no delay and `tokens` output tokens per request.
pub fn simulator(port: u16, tokens: u32) -> Child {
    simulator_with_gaps(port, tokens, 0)
}

/// `llm-loadtest sim` on 127.0.0.1:`port`: first token at once, then `tokens` tokens one per
/// chunk, `itl_ms` apart.
pub fn simulator_with_gaps(port: u16, tokens: u32, itl_ms: u32) -> Child {
    let mut child = Command::new(BIN)
        .args(["sim", "--port", &port.to_string(), "--ttft-ms", "0", "--itl-ms", &itl_ms.to_string()])
        .args(["--output-tokens", &tokens.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the simulator did not start");
}
