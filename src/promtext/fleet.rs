//! A fleet's /metrics as one document: every replica's samples with a
//! `llm_loadtest_replica` label. Deltas, reset checks, filters and sums of one
//! server then apply unchanged: a sum over the fleet is a sum over the label,
//! and a reset names the replica whose series showed it. The combined document
//! renders to text, so a saved fleet snapshot is re-read like any other.

use std::collections::BTreeSet;

use super::{Exposition, Family, LineError};

/// The label a fleet snapshot tells replicas apart by (ours, so it never meets a server's own).
pub const REPLICA_LABEL: &str = "llm_loadtest_replica";

/// One document from each replica's (name, snapshot), in the order given.
pub fn combine(parts: &[(&str, &Exposition)]) -> Exposition {
    let mut out = Exposition { format: parts.first().map(|(_, e)| e.format).unwrap_or_default(), ..Default::default() };
    for (replica, e) in parts {
        out.truncated |= e.truncated;
        out.line_errors.extend(
            e.line_errors
                .iter()
                .map(|l| LineError { line_no: l.line_no, message: format!("replica {replica}: {}", l.message) }),
        );
        for family in &e.families {
            let samples = family.samples.iter().map(|s| {
                let mut s = s.clone();
                s.labels = s.labels.with(REPLICA_LABEL, replica);
                s
            });
            match out.families.iter_mut().find(|f| f.name == family.name) {
                None => {
                    let mut f = Family { samples: samples.collect(), ..family.clone() };
                    f.flaw = family.flaw.as_ref().map(|w| format!("replica {replica}: {w}"));
                    out.families.push(f);
                }
                Some(f) if f.kind != family.kind => {
                    // Two vLLM versions in one fleet: the family is not summed across types.
                    f.flaw.get_or_insert_with(|| {
                        format!(
                            "replica {replica} declares {} a {}, another replica a {}",
                            family.name,
                            family.kind.as_str(),
                            f.kind.as_str()
                        )
                    });
                }
                Some(f) => {
                    f.samples.extend(samples);
                    if f.flaw.is_none() {
                        f.flaw = family.flaw.as_ref().map(|w| format!("replica {replica}: {w}"));
                    }
                }
            }
        }
    }
    out
}

/// The replicas a combined snapshot holds, sorted; empty for a single server's snapshot.
pub fn replicas(e: &Exposition) -> Vec<String> {
    let names: BTreeSet<&str> =
        e.families.iter().flat_map(|f| f.samples.iter()).filter_map(|s| s.labels.get(REPLICA_LABEL)).collect();
    names.into_iter().map(str::to_owned).collect()
}

/// One replica's part of a combined snapshot, as that replica served it (its label removed).
pub fn replica(e: &Exposition, name: &str) -> Exposition {
    let families = e
        .families
        .iter()
        .map(|f| Family {
            samples: f
                .samples
                .iter()
                .filter(|s| s.labels.get(REPLICA_LABEL) == Some(name))
                .map(|s| {
                    let mut s = s.clone();
                    s.labels = s.labels.without(REPLICA_LABEL);
                    s
                })
                .collect(),
            ..f.clone()
        })
        .filter(|f| !f.samples.is_empty())
        .collect();
    Exposition { families, line_errors: Vec::new(), format: e.format, truncated: e.truncated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promtext::{LabelFilter, counter_delta, parse};

    const A: &str = "# TYPE vllm:request_success_total counter\n\
        vllm:request_success_total{finished_reason=\"stop\",model_name=\"m\"} 5\n\
        # TYPE vllm:request_success_created gauge\n\
        vllm:request_success_created{finished_reason=\"stop\",model_name=\"m\"} 100\n\
        # TYPE vllm:e2e_request_latency_seconds histogram\n\
        vllm:e2e_request_latency_seconds_bucket{le=\"1.0\",model_name=\"m\"} 4\n\
        vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 5\n\
        vllm:e2e_request_latency_seconds_sum{model_name=\"m\"} 3.5\n\
        vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 5\n";

    fn with(text: &str, success: u32, created: u32) -> Exposition {
        parse(&text.replace("} 5\n", &format!("}} {success}\n")).replace("} 100\n", &format!("}} {created}\n")))
    }

    #[test]
    fn sums_over_the_fleet_are_sums_over_replicas_and_render_round_trips() {
        let (a, b) = (parse(A), with(A, 7, 100));
        let fleet = combine(&[("a:1", &a), ("b:1", &b)]);
        let all = LabelFilter::new();
        assert_eq!(fleet.counter_sum("vllm:request_success_total", &all), Some(12.0));
        let h = fleet.histogram("vllm:e2e_request_latency_seconds", &all).unwrap();
        assert_eq!((h.count, h.sum), (12.0, 7.0), "b's count is 7 like its counter");
        assert_eq!(replicas(&fleet), ["a:1", "b:1"]);
        assert_eq!(replica(&fleet, "a:1"), a, "a replica's part is what it served");
        assert_eq!(parse(&fleet.render()), fleet);
        assert!(replicas(&a).is_empty());
    }

    #[test]
    fn a_reset_on_one_replica_names_it() {
        let before = combine(&[("a:1", &parse(A)), ("b:1", &with(A, 9, 100))]);
        // b restarted: its counter is lower but its replica-mate's growth hides that in the sum.
        let after = combine(&[("a:1", &with(A, 20, 100)), ("b:1", &with(A, 2, 130))]);
        let e = counter_delta(&before, &after, "vllm:request_success_total", &LabelFilter::new()).unwrap_err();
        assert!(e.to_string().contains("llm_loadtest_replica=\"b:1\""), "{e}");
    }

    #[test]
    fn replicas_that_disagree_on_a_type_flag_the_family() {
        let other = parse("# TYPE vllm:request_success_total gauge\nvllm:request_success_total 3\n");
        let fleet = combine(&[("a:1", &parse(A)), ("b:1", &other)]);
        let flaw = fleet.flaw_of("vllm:request_success_total").unwrap();
        assert!(flaw.contains("replica b:1 declares vllm:request_success_total a gauge"), "{flaw}");
        let cut = parse("up 1\nvllm:x 2");
        let fleet = combine(&[("a:1", &parse(A)), ("b:1", &cut)]);
        assert!(fleet.looks_cut());
    }
}
