//! Fuzz `promtext::parse` and everything reachable from a parsed document: no input may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_loadtest::promtext::{LabelFilter, counter_delta, histogram_delta, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let exposition = parse(&text);
    let all = LabelFilter::new();
    for family in &exposition.families {
        let name = family.name.as_str();
        let _ = exposition.counter_sum(name, &all);
        let _ = exposition.gauge_values(name, &all);
        let _ = exposition.created(name, &all);
        if let Some(histogram) = exposition.histogram(name, &all) {
            let _ = (
                histogram.mean(),
                histogram.quantile(0.0),
                histogram.quantile(0.5),
                histogram.quantile(1.0),
            );
        }
    }
    // Whatever was understood renders to text whose every sample line is read back.
    let again = parse(&exposition.render());
    assert!(again.sample_count() + again.line_errors.len() >= exposition.sample_count());
    for family in &exposition.families {
        let _ = counter_delta(&exposition, &again, &family.name, &all);
        let _ = histogram_delta(&exposition, &again, &family.name, &all);
    }
});
