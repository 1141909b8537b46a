//! A run's records, kept out of memory: a burst's collector streams each record to a spool file
//! as it finishes (the lines `requests.jsonl` holds), and the stages after the load read them
//! back in passes. Memory then does not grow with the burst's length (issue 14); the statistics
//! are accumulated on the way in (`stats::Accumulator`).
//!
//! The spool is an unnamed temporary file (`tempfile::tempfile`: the OS removes it when the
//! last handle closes, even after a crash). When it cannot be made or written (no writable
//! temporary directory, a full disk), the records are held in memory instead: a run never loses
//! a record to its spool.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::record::RequestRecord;

/// The records of one run, cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Records(Arc<Inner>);

#[derive(Debug)]
enum Inner {
    Held(Vec<RequestRecord>),
    /// The first `records` records are `bytes` bytes of `file`; `tail` came after a write failed.
    Spooled {
        file: Mutex<File>,
        bytes: u64,
        records: usize,
        tail: Vec<RequestRecord>,
    },
    /// A saved run's `requests.jsonl`, read when asked.
    Saved {
        path: PathBuf,
        records: usize,
    },
}

impl Default for Records {
    fn default() -> Self {
        Records::held(Vec::new())
    }
}

impl Records {
    pub fn held(records: Vec<RequestRecord>) -> Self {
        Records(Arc::new(Inner::Held(records)))
    }

    /// A saved `requests.jsonl` of `records` lines (its reader counted them).
    pub fn saved(path: PathBuf, records: usize) -> Self {
        Records(Arc::new(Inner::Saved { path, records }))
    }

    pub fn len(&self) -> usize {
        match &*self.0 {
            Inner::Held(v) => v.len(),
            Inner::Spooled { records, tail, .. } => records + tail.len(),
            Inner::Saved { records, .. } => *records,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the records are in a file, not in memory.
    pub fn is_spooled(&self) -> bool {
        !matches!(&*self.0, Inner::Held(_))
    }

    /// Call `f` with every record, in the order they finished, until it breaks. An error is
    /// a spool or saved file that could not be read back (it says which line).
    pub fn visit(&self, mut f: impl FnMut(&RequestRecord) -> ControlFlow<()>) -> Result<(), String> {
        match &*self.0 {
            Inner::Held(v) => {
                for r in v {
                    if f(r).is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Inner::Spooled { file, bytes, tail, .. } => {
                // One reader at a time: the readers share the file's offset.
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                file.seek(SeekFrom::Start(0)).map_err(|e| format!("the records' spool file: {e}"))?;
                let reader = BufReader::new((&mut *file).take(*bytes));
                if read_lines(reader, &mut f, "the records' spool file")?.is_break() {
                    return Ok(());
                }
                for r in tail {
                    if f(r).is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Inner::Saved { path, .. } => {
                let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                read_lines(BufReader::new(file), &mut f, &path.display().to_string()).map(|_| ())
            }
        }
    }

    /// Call `f` with every record; a file that cannot be read back is logged (the stages
    /// after the load have no better place to report it) and ends the pass.
    pub fn for_each(&self, mut f: impl FnMut(&RequestRecord)) {
        if let Err(e) = self.visit(|r| {
            f(r);
            ControlFlow::Continue(())
        }) {
            tracing::error!(error = %e, "the run's records could not be read back");
        }
    }

    /// The first record for which `f` gives a value.
    pub fn find_map<T>(&self, mut f: impl FnMut(&RequestRecord) -> Option<T>) -> Option<T> {
        let mut found = None;
        let read = self.visit(|r| match f(r) {
            Some(v) => {
                found = Some(v);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        });
        if let Err(e) = read {
            tracing::error!(error = %e, "the run's records could not be read back");
        }
        found
    }

    /// Every record in memory (tests, `merge`, a worker's upload: the callers that need them all).
    pub fn to_vec(&self) -> Vec<RequestRecord> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|r| v.push(r.clone()));
        v
    }

    /// The records as `requests.jsonl` holds them, to `out`.
    pub fn write_jsonl(&self, out: &mut impl Write) -> Result<(), String> {
        if let Inner::Spooled { file, bytes, tail, .. } = &*self.0 {
            // The spool already holds the lines: copy them as they are.
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.seek(SeekFrom::Start(0)).map_err(|e| format!("the records' spool file: {e}"))?;
            std::io::copy(&mut (&mut *file).take(*bytes), out).map_err(|e| e.to_string())?;
            for r in tail {
                out.write_all(&jsonl_line(r)).map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
        let mut failed = None;
        self.visit(|r| match out.write_all(&jsonl_line(r)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e.to_string());
                ControlFlow::Break(())
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

/// Records that can be read in one pass: a run's [`Records`], or records in memory (tests,
/// `merge`). The stages after the load take this, so they work the same on either.
pub trait EachRecord {
    fn each(&self, f: &mut dyn FnMut(&RequestRecord));
}

impl EachRecord for [RequestRecord] {
    fn each(&self, f: &mut dyn FnMut(&RequestRecord)) {
        self.iter().for_each(f);
    }
}

impl EachRecord for Vec<RequestRecord> {
    fn each(&self, f: &mut dyn FnMut(&RequestRecord)) {
        self.iter().for_each(f);
    }
}

impl<const N: usize> EachRecord for [RequestRecord; N] {
    fn each(&self, f: &mut dyn FnMut(&RequestRecord)) {
        self.iter().for_each(f);
    }
}

impl EachRecord for Records {
    fn each(&self, f: &mut dyn FnMut(&RequestRecord)) {
        self.for_each(f);
    }
}

/// One record as a `requests.jsonl` line, newline included.
pub fn jsonl_line(r: &RequestRecord) -> Vec<u8> {
    // Serializing plain data cannot fail; an empty line would show if it did.
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Parse `requests.jsonl` lines from `reader` into `f`; blank lines are skipped, a bad line
/// is an error naming `what` and the line.
pub fn read_lines(
    mut reader: impl BufRead,
    f: &mut impl FnMut(&RequestRecord) -> ControlFlow<()>,
    what: &str,
) -> Result<ControlFlow<()>, String> {
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        number += 1;
        let n = reader.read_until(b'\n', &mut line).map_err(|e| format!("{what}: {e}"))?;
        if n == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let r: RequestRecord =
            serde_json::from_slice(&line).map_err(|e| format!("{what} line {number}: not a request record: {e}"))?;
        if f(&r).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}

/// Spool lines are written in blocks of this size.
const BLOCK: usize = 256 * 1024;

/// Writes records to a spool as they come; [`SpoolWriter::finish`] gives the [`Records`].
#[derive(Debug)]
pub struct SpoolWriter {
    file: Option<File>,
    /// False once a write failed: the file keeps its whole blocks, later records are held.
    writable: bool,
    /// Lines not written yet (whole lines only).
    block: Vec<u8>,
    bytes: u64,
    records: usize,
    in_block: usize,
    /// Records held in memory once the spool failed (or could not be made).
    tail: Vec<RequestRecord>,
    /// The chunk times those hold, bytes.
    tail_chunk_bytes: usize,
}

impl SpoolWriter {
    /// A spool in the temporary directory; records are held in memory when it cannot be made.
    pub fn new() -> Self {
        let mut w = SpoolWriter::in_memory();
        match tempfile::tempfile() {
            Ok(f) => {
                w.file = Some(f);
                w.writable = true;
                w.block.reserve(BLOCK);
            }
            Err(e) => tracing::warn!(error = %e, "no spool file for the records (they are held in memory)"),
        }
        w
    }

    /// Records held in memory from the start (no spool).
    pub fn in_memory() -> Self {
        SpoolWriter {
            file: None,
            writable: false,
            block: Vec::new(),
            bytes: 0,
            records: 0,
            in_block: 0,
            tail: Vec::new(),
            tail_chunk_bytes: 0,
        }
    }

    /// Bytes of records held in memory (none while the spool file takes them).
    pub fn held_bytes(&self) -> u64 {
        let records = self.tail.capacity() * std::mem::size_of::<RequestRecord>();
        (records + self.tail_chunk_bytes + self.block.capacity()) as u64
    }

    pub fn push(&mut self, r: RequestRecord) {
        if self.writable {
            self.write(&r);
        } else {
            self.hold(r);
        }
    }

    /// [`SpoolWriter::push`] of a record read from elsewhere: copied only when it must be held.
    pub fn push_ref(&mut self, r: &RequestRecord) {
        if self.writable {
            self.write(r);
        } else {
            self.hold(r.clone());
        }
    }

    /// Keep `r` in memory, counting what its chunk times hold.
    fn hold(&mut self, r: RequestRecord) {
        self.tail_chunk_bytes += r.chunk_times_s.capacity() * std::mem::size_of::<f64>();
        self.tail.push(r);
    }

    fn write(&mut self, r: &RequestRecord) {
        self.block.extend_from_slice(&jsonl_line(r));
        self.in_block += 1;
        if self.block.len() >= BLOCK {
            self.flush();
        }
    }

    /// Write the block; on failure the spool ends where its last whole block ended, and the
    /// block's records (and every later one) are held in memory.
    fn flush(&mut self) {
        let Some(file) = self.file.as_mut().filter(|_| self.writable) else { return };
        if self.block.is_empty() {
            return;
        }
        match file.write_all(&self.block) {
            Ok(()) => {
                self.bytes += self.block.len() as u64;
                self.records += self.in_block;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the records' spool file failed (the rest are held in memory)");
                let _ = file.set_len(self.bytes);
                self.writable = false;
                let block = std::mem::take(&mut self.block);
                let mut back = |r: &RequestRecord| {
                    self.hold(r.clone());
                    ControlFlow::Continue(())
                };
                // Our own lines: they parse.
                let _ = read_lines(&block[..], &mut back, "the spool block");
                self.block = block;
            }
        }
        self.block.clear();
        self.in_block = 0;
    }

    pub fn finish(mut self) -> Records {
        self.flush();
        match self.file {
            Some(file) => Records(Arc::new(Inner::Spooled {
                file: Mutex::new(file),
                bytes: self.bytes,
                records: self.records,
                tail: self.tail,
            })),
            None => Records::held(self.tail),
        }
    }
}

impl Default for SpoolWriter {
    fn default() -> Self {
        SpoolWriter::new()
    }
}

#[cfg(test)]
mod tests;
