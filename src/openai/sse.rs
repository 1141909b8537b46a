//! Server-sent events from the bytes of a response, incrementally, in bounded
//! memory and linear time. Pure: bytes in, `data` payloads out.
//!
//! Written here rather than taken from `eventsource-stream` (which re-scans its
//! whole buffer on every read, so a long line costs quadratic time, and keeps
//! any line whatever its size) or tokio-util's `LinesCodec` (bounded and
//! linear, but blind to SSE's lone-CR line ends and to the size of a whole
//! event). The SSE rules kept: lines end in LF, CRLF or CR; `data:` lines of one
//! event are joined with LF; an empty line ends the event; `:` starts a
//! comment; other fields (`event`, `id`, `retry`) are read and ignored.

/// The most one line or one event may hold; past it the stream is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    pub max_line_bytes: usize,
    pub max_event_bytes: usize,
}

impl Default for SseLimits {
    /// 1 MiB a line, 4 MiB an event: a vLLM chunk is well under 10 KiB even with logprobs.
    fn default() -> Self {
        SseLimits { max_line_bytes: 1 << 20, max_event_bytes: 4 << 20 }
    }
}

/// Why a stream could not be read as SSE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("an SSE event longer than {0} bytes")]
    EventTooLong(usize),
    #[error("an SSE line is not UTF-8")]
    NotUtf8,
}

/// The most of a line buffer kept from one line to the next (a vLLM chunk is well under it).
const KEPT_LINE_CAPACITY: usize = 64 << 10;

/// The decoder of one stream.
#[derive(Debug, Default)]
pub struct SseDecoder {
    limits: SseLimits,
    /// The line read so far (no terminator).
    line: Vec<u8>,
    /// The `data` of the event read so far, and whether it has any `data` line.
    data: String,
    has_data: bool,
    /// The last byte fed was a CR: an LF right after it is the same line end.
    after_cr: bool,
}

impl SseDecoder {
    pub fn new(limits: SseLimits) -> Self {
        SseDecoder { limits, ..SseDecoder::default() }
    }

    /// Feed the next bytes; the `data` of every event they complete is pushed to `out`.
    /// After an error the stream is beyond repair: stop reading it.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if bytes.is_empty() {
            // (An empty read, as an empty HTTP/2 DATA frame gives, must not forget a CR.)
            return Ok(());
        }
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) {
            if self.line.is_empty() {
                // The whole line is in this read (the usual case): read it where it lies.
                if end > self.limits.max_line_bytes {
                    return Err(SseError::LineTooLong(self.limits.max_line_bytes));
                }
                self.end_line(&bytes[..end], out)?;
            } else {
                self.append(&bytes[..end])?;
                // Taken and given back so that its buffer is reused for the next line.
                let line = std::mem::take(&mut self.line);
                let ended = self.end_line(&line, out);
                // Kept for the next line, unless a long line grew it: a stream then holds no
                // more than a chunk's worth between lines.
                if line.capacity() <= KEPT_LINE_CAPACITY {
                    self.line = line;
                    self.line.clear();
                }
                ended?;
            }
            let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
            if bytes[end] == b'\r' && end + 1 == bytes.len() {
                self.after_cr = true;
            }
            bytes = &bytes[end + if crlf { 2 } else { 1 }..];
        }
        self.append(bytes)
    }

    /// The end of the stream: an event not closed by an empty line is dropped, as the SSE
    /// specification says.
    pub fn pending_bytes(&self) -> usize {
        self.line.len() + self.data.len()
    }

    fn append(&mut self, part: &[u8]) -> Result<(), SseError> {
        if self.line.len() + part.len() > self.limits.max_line_bytes {
            return Err(SseError::LineTooLong(self.limits.max_line_bytes));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn end_line(&mut self, line: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some(("", _)) => return Ok(()), // a comment
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            if self.data.len() + value.len() + 1 > self.limits.max_event_bytes {
                return Err(SseError::EventTooLong(self.limits.max_event_bytes));
            }
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]], limits: SseLimits) -> Result<Vec<String>, SseError> {
        let mut d = SseDecoder::new(limits);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn events_from_every_line_end_and_any_split() {
        let text = b"data: {\"a\":1}\n\n: keep-alive\r\nevent: x\r\ndata: two\r\ndata:  lines\r\n\r\ndata:[DONE]\r\r";
        let want = vec!["{\"a\":1}".to_owned(), "two\n lines".to_owned(), "[DONE]".to_owned()];
        assert_eq!(all(&[text], SseLimits::default()).unwrap(), want);
        // Split at every byte: the same events (a CRLF split in two is one line end).
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(all(&bytes, SseLimits::default()).unwrap(), want);
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(all(&[a, b], SseLimits::default()).unwrap(), want, "cut at {cut}");
        }
    }

    #[test]
    fn an_event_without_its_empty_line_is_not_delivered() {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        d.feed(b"data: half", &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(d.pending_bytes(), 10);
    }

    #[test]
    fn a_line_or_event_over_its_limit_is_refused_at_once() {
        let limits = SseLimits { max_line_bytes: 16, max_event_bytes: 24 };
        // No newline at all: refused as soon as the 17th byte arrives, whatever follows.
        let long = [b'x'; 10];
        let mut d = SseDecoder::new(limits);
        let mut out = Vec::new();
        d.feed(&long, &mut out).unwrap();
        assert_eq!(d.feed(&long, &mut out), Err(SseError::LineTooLong(16)));
        // Short lines adding up to a long event.
        let r = all(&[b"data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n"], limits);
        assert_eq!(r, Err(SseError::EventTooLong(24)));
        assert_eq!(all(&[b"data: \xff\xfe\n\n"], limits), Err(SseError::NotUtf8));
        // A whole line in one read, with its line end: 16 bytes pass, 17 are refused.
        assert_eq!(all(&[b"data: 0123456789\n\n"], limits).unwrap(), ["0123456789"]);
        assert_eq!(all(&[b"data: 01234567890\n\n"], limits), Err(SseError::LineTooLong(16)));
        // The same split over reads.
        assert_eq!(all(&[b"data: 01234", b"567890\n\n"], limits), Err(SseError::LineTooLong(16)));
    }

    #[test]
    fn an_empty_read_keeps_a_cr_line_end_whole() {
        // CR, then an empty read, then LF: one line end, so the event ends at the empty line.
        let got = all(&[b"data: a\r", b"", b"\ndata: b\r\n\r\n"], SseLimits::default()).unwrap();
        assert_eq!(got, ["a\nb"]);
    }

    #[test]
    fn a_long_line_does_not_keep_its_buffer() {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        let long = vec![b'x'; 200 << 10];
        d.feed(b"data: ", &mut out).unwrap();
        d.feed(&long, &mut out).unwrap();
        d.feed(b"\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(d.line.capacity() <= KEPT_LINE_CAPACITY, "{}", d.line.capacity());
    }

    #[test]
    fn linear_in_the_bytes_received() {
        // 4 MiB without a newline in 1-byte reads would be ~8e12 byte visits if every read
        // re-scanned the buffer; here each byte is looked at once (this runs in milliseconds).
        let limits = SseLimits { max_line_bytes: 8 << 20, max_event_bytes: 8 << 20 };
        let mut d = SseDecoder::new(limits);
        let mut out = Vec::new();
        let chunk = [b'a'; 64];
        for _ in 0..(4 << 20) / 64 {
            d.feed(&chunk, &mut out).unwrap();
        }
        assert_eq!(d.pending_bytes(), 4 << 20);
    }
}
