//! Fuzz the SSE decoder: any bytes, split anywhere, must neither panic nor hold more than its
//! limits, and splitting the same bytes differently must give the same events.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_loadtest::openai::{SseDecoder, SseLimits};

fuzz_target!(|data: &[u8]| {
    let limits = SseLimits { max_line_bytes: 256, max_event_bytes: 1024 };
    let (cuts, bytes) = data.split_at(data.len().min(2));
    let decode = |chunks: &[&[u8]]| {
        let mut d = SseDecoder::new(limits);
        let mut out = Vec::new();
        for c in chunks {
            if d.feed(c, &mut out).is_err() {
                return (out, true);
            }
            assert!(d.pending_bytes() <= limits.max_line_bytes + limits.max_event_bytes);
        }
        (out, false)
    };
    let whole = decode(&[bytes]);
    let at = cuts.first().map_or(0, |c| *c as usize % (bytes.len() + 1));
    let (a, b) = bytes.split_at(at);
    let split = decode(&[a, b]);
    // An error may come at a different event (the same bytes), but the events before it agree.
    if !whole.1 && !split.1 {
        assert_eq!(whole.0, split.0);
    }
    for ev in whole.0 {
        assert!(ev.len() <= limits.max_event_bytes);
    }
});
