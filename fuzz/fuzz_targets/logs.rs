//! Fuzz the vLLM log analyzer: any text (docker timestamps or not, with request ids of a
//! burst) must neither panic nor count a line twice.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_loadtest::logs::{LogAnalyzer, analyze_text_with};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let findings = analyze_text_with(&text, LogAnalyzer::new().with_request_id_prefix(String::from("run1-")));
    let lines = text.strip_suffix('\n').unwrap_or(&text).split('\n').count() as u64;
    assert!(findings.received.lines <= lines);
});
