use super::*;
use crate::record::Outcome;

fn record(index: u64) -> RequestRecord {
    let mut r = RequestRecord::new(index, index.is_multiple_of(7), index as f64 * 1e-3, index as f64 * 1e-3, 16);
    r.ttft_s = Some(0.01 + index as f64 * 1e-6);
    r.e2e_s = Some(0.2);
    r.chunk_times_s = (0..8).map(|i| 0.01 + i as f64 * 0.02).collect();
    r.completion_tokens = Some(8);
    r.finish_reason = Some("length".into());
    if index.is_multiple_of(11) {
        r.outcome = Outcome::HttpError;
        r.error = Some(format!("HTTP 500 on request {index}"));
    }
    r
}

fn spooled(writer: SpoolWriter, n: u64) -> Records {
    let mut w = writer;
    for i in 0..n {
        w.push(record(i));
    }
    w.finish()
}

#[test]
fn a_spool_gives_back_every_record_as_it_was_written_in_every_pass() {
    // Over several blocks, so block boundaries are crossed.
    let n = 3_000;
    let records = spooled(SpoolWriter::new(), n);
    assert!(records.is_spooled());
    assert_eq!(records.len(), n as usize);
    let want: Vec<RequestRecord> = (0..n).map(record).collect();
    assert_eq!(records.to_vec(), want);
    // A second pass, and a pass cut short, read from the start again.
    assert_eq!(records.find_map(|r| r.error.clone()), Some("HTTP 500 on request 0".to_owned()));
    assert_eq!(records.to_vec(), want);
    let mut jsonl = Vec::new();
    records.write_jsonl(&mut jsonl).unwrap();
    let lines: Vec<u8> = want.iter().flat_map(jsonl_line).collect();
    assert_eq!(jsonl, lines, "the file is requests.jsonl as it always was");
}

#[test]
fn a_spool_that_cannot_be_written_keeps_every_record_in_memory() {
    // /dev/full refuses every write (ENOSPC): the records written so far stay, the rest are held.
    let Ok(full) = std::fs::OpenOptions::new().write(true).read(true).open("/dev/full") else {
        panic!("/dev/full is not here: this test needs Linux");
    };
    let mut w = SpoolWriter::new();
    w.file = Some(full);
    let records = spooled(w, 2_000);
    assert_eq!(records.len(), 2_000);
    assert_eq!(records.to_vec(), (0..2_000).map(record).collect::<Vec<_>>());

    let held = spooled(SpoolWriter::in_memory(), 10);
    assert!(!held.is_spooled());
    assert_eq!(held.to_vec(), (0..10).map(record).collect::<Vec<_>>());
}

#[test]
fn a_spool_that_fails_midway_keeps_its_written_blocks_and_holds_the_rest() {
    let mut w = SpoolWriter::new();
    for i in 0..2_000 {
        w.push(record(i));
    }
    w.flush();
    let written = w.records;
    assert!(written > 0);
    // From now on every write fails: the written blocks are read from the old file, the rest
    // from memory. (The old file's handle is kept: what it holds is not lost.)
    let old = w.file.take().unwrap();
    let bytes = w.bytes;
    w.file = Some(std::fs::OpenOptions::new().write(true).read(true).open("/dev/full").unwrap());
    for i in 2_000..3_000 {
        w.push(record(i));
    }
    w.flush();
    assert!(!w.writable);
    w.file = Some(old);
    w.bytes = bytes;
    let records = w.finish();
    assert_eq!(records.len(), 3_000);
    assert_eq!(records.to_vec(), (0..3_000).map(record).collect::<Vec<_>>());
}

#[test]
fn a_bad_line_in_a_saved_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let mut text: Vec<u8> = (0..3).map(record).flat_map(|r| jsonl_line(&r)).collect();
    text.extend(b"\nnot json\n");
    std::fs::write(&path, &text).unwrap();
    let records = Records::saved(path, 3);
    let mut seen = 0;
    let e = records
        .visit(|_| {
            seen += 1;
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert_eq!(seen, 3);
    assert!(e.contains("line 5: not a request record"), "{e}");
}
