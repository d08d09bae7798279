//! Newline framing: turns a byte stream into lines, one message each.
//!
//! A line ends at `\n`; a `\r` right before it is part of the ending (CRLF), any other `\r` is
//! left in the line for the JSON validator to refuse, because a lenient reader would split there.
//! A line longer than the limit is discarded whole, up to and including its newline: never a
//! remainder, which a reader could otherwise take for a message of its own.
//!
//! The relay's pump threads read with [`LineReader::read_frame`], blocking.

use std::io::{self, Read};
use std::ops::Range;

/// How much the reader asks the OS for at once. Large enough that a multi-megabyte tool result
/// takes few reads, small enough to be a rounding error in memory.
const READ_CHUNK: usize = 256 * 1024;

/// How much of each end of an over-long line is kept, so that its request id can still be read
/// and answered: clients write the id near the start (the Python SDK) or the end (the TS SDK).
pub const EDGE_BYTES: usize = 4096;

/// What the reader produced next.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One line, always ending in a single `\n` (a CRLF ending is turned into `\n`, and a last
    /// line without a newline at the end of input gets one), so it can be forwarded as it is.
    Line(&'a [u8]),
    /// A line longer than the limit was read and thrown away; `len` counts its bytes, `head`
    /// and `tail` are its first and last [`EDGE_BYTES`] (without the line ending).
    TooLong {
        len: usize,
        head: &'a [u8],
        tail: &'a [u8],
    },
    /// The input is closed.
    Eof,
}

/// Reads newline-delimited lines with a length limit.
pub struct LineReader<R> {
    inner: R,
    max_line: usize,
    buf: Vec<u8>,
    /// `buf[start..end]` holds bytes read but not yet returned.
    start: usize,
    end: usize,
    /// Bytes after `start` already searched for a newline.
    searched: usize,
    /// Bytes of an over-long line thrown away so far; `Some` while skipping to its end.
    discarding: Option<usize>,
    /// The first and last bytes of the over-long line being (or last) thrown away.
    head: Vec<u8>,
    tail: Vec<u8>,
    eof: bool,
    /// Where the line last returned lies in `buf`, until the buffer changes.
    last_line: Option<Range<usize>>,
}

/// Where the next frame lies in the buffer.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// `buf[start..end]`, ending in `\n`.
    Line {
        start: usize,
        end: usize,
    },
    TooLong {
        len: usize,
    },
    Eof,
}

impl<R> LineReader<R> {
    /// `max_line` counts the bytes of a line without its ending.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner,
            max_line,
            buf: Vec::new(),
            start: 0,
            end: 0,
            searched: 0,
            discarding: None,
            head: Vec::new(),
            tail: Vec::new(),
            eof: false,
            last_line: None,
        }
    }

    /// The input the lines are read from.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives away the buffer that holds the line just returned, with the line's place in it,
    /// so the line can be written without being copied; `spare` becomes the buffer, and the
    /// bytes read after the line (less than one read) are moved into it. Returns `None`, and
    /// leaves `spare` alone, unless the last frame returned was a line.
    ///
    /// A buffer passed in as `spare` is best one that came out of here: its length is kept,
    /// so the reader does not zero it again as it fills it.
    pub fn take_line(&mut self, spare: &mut Vec<u8>) -> Option<(Vec<u8>, Range<usize>)> {
        let line = self.last_line.take()?;
        let pending = self.end - self.start;
        if spare.len() < pending {
            spare.resize(pending, 0);
        }
        spare[..pending].copy_from_slice(&self.buf[self.start..self.end]);
        let full = std::mem::replace(&mut self.buf, std::mem::take(spare));
        self.start = 0;
        self.end = pending;
        Some((full, line))
    }

    /// Whether the next frame can be returned without reading: a whole line (or the end of
    /// input) is already buffered. A caller that holds output back while this is true never
    /// delays it past the processing of lines that are already here.
    pub fn has_frame_buffered(&mut self) -> bool {
        if self.eof {
            return true;
        }
        let from = self.start + self.searched;
        match memchr::memchr(b'\n', &self.buf[from..self.end]) {
            Some(_) => true,
            None => {
                self.searched = self.end - self.start;
                false
            }
        }
    }

    /// The next frame from what is buffered, or `None` when more input is needed.
    fn next_buffered(&mut self) -> Option<Span> {
        self.last_line = None;
        if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start + self.searched..self.end]) {
            let newline = self.start + self.searched + pos;
            let line_start = self.start;
            self.start = newline + 1;
            self.searched = 0;
            let mut content_end = newline;
            if content_end > line_start && self.buf[content_end - 1] == b'\r' {
                content_end -= 1;
            }
            if let Some(dropped) = self.discarding.take() {
                self.keep_tail(line_start, content_end);
                return Some(Span::TooLong {
                    len: dropped + (newline - line_start),
                });
            }
            if content_end - line_start > self.max_line {
                self.keep_edges(line_start, content_end);
                return Some(Span::TooLong {
                    len: content_end - line_start,
                });
            }
            // A CRLF ending becomes LF in place, so the line and its ending stay one slice.
            self.buf[content_end] = b'\n';
            self.last_line = Some(line_start..content_end + 1);
            return Some(Span::Line {
                start: line_start,
                end: content_end + 1,
            });
        }
        self.searched = self.end - self.start;

        if self.eof {
            return Some(self.finish());
        }
        // A line still open past the limit (plus room for a CR) is dropped as it arrives.
        let pending = self.end - self.start;
        if pending > self.max_line + 1 {
            match &mut self.discarding {
                Some(dropped) => {
                    *dropped += pending;
                    self.keep_tail(self.start, self.end);
                }
                None => {
                    self.discarding = Some(pending);
                    self.keep_edges(self.start, self.end);
                }
            }
            self.start = self.end;
            self.searched = 0;
        }
        None
    }

    fn frame(&self, span: Span) -> Frame<'_> {
        match span {
            Span::Line { start, end } => Frame::Line(&self.buf[start..end]),
            Span::TooLong { len } => Frame::TooLong {
                len,
                head: &self.head,
                tail: &self.tail,
            },
            Span::Eof => Frame::Eof,
        }
    }

    /// The end of input: what is left is a last line without a newline.
    fn finish(&mut self) -> Span {
        let line_start = self.start;
        let len = self.end - line_start;
        self.start = self.end;
        self.searched = 0;
        if let Some(dropped) = self.discarding.take() {
            self.keep_tail(line_start, self.end);
            return Span::TooLong { len: dropped + len };
        }
        if len == 0 {
            return Span::Eof;
        }
        if len > self.max_line {
            self.keep_edges(line_start, self.end);
            return Span::TooLong { len };
        }
        if self.end == self.buf.len() {
            self.buf.push(b'\n');
        } else {
            self.buf[self.end] = b'\n';
        }
        self.end += 1;
        self.start = self.end;
        self.last_line = Some(line_start..self.end);
        Span::Line {
            start: line_start,
            end: self.end,
        }
    }

    /// Starts the edges of an over-long line with `buf[from..to]`, its first bytes.
    fn keep_edges(&mut self, from: usize, to: usize) {
        self.head.clear();
        self.head
            .extend_from_slice(&self.buf[from..to.min(from + EDGE_BYTES)]);
        self.tail.clear();
        self.keep_tail(from, to);
    }

    /// Adds `buf[from..to]`, the next bytes of an over-long line, to the tail kept of it.
    fn keep_tail(&mut self, from: usize, to: usize) {
        let from = from.max(to.saturating_sub(EDGE_BYTES));
        self.tail.extend_from_slice(&self.buf[from..to]);
        if self.tail.len() > EDGE_BYTES {
            self.tail.drain(..self.tail.len() - EDGE_BYTES);
        }
    }

    /// Makes room for the next read, moving unread bytes to the front or growing the buffer.
    fn make_room(&mut self) {
        self.last_line = None;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
    }

    fn filled(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
    }
}

impl<R: Read> LineReader<R> {
    /// The next line, an over-long line's notice, or the end of input; blocks for input.
    pub fn read_frame(&mut self) -> io::Result<Frame<'_>> {
        loop {
            if let Some(span) = self.next_buffered() {
                return Ok(self.frame(span));
            }
            self.make_room();
            let n = self.inner.read(&mut self.buf[self.end..])?;
            self.filled(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `chunk` at a time, as a pipe may.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Reads every frame from `input` delivered in chunks of `chunk` bytes.
    fn frames(input: &[u8], max_line: usize, chunk: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut reader = LineReader::new(
            Chunked {
                data: input,
                chunk: chunk.max(1),
            },
            max_line,
        );
        let mut out = Vec::new();
        loop {
            match reader.read_frame().unwrap() {
                Frame::Line(line) => out.push(Ok(line.to_vec())),
                Frame::TooLong { len, .. } => out.push(Err(len)),
                Frame::Eof => break,
            }
        }
        out
    }

    fn line(s: &str) -> Result<Vec<u8>, usize> {
        Ok(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines_in_any_chunking() {
        let input = b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}";
        for chunk in [1, 2, 3, 7, 1024] {
            assert_eq!(
                frames(input, 100, chunk),
                vec![
                    line("{\"a\":1}\n"),
                    line("{\"b\":2}\n"),
                    line("\n"),
                    line("{\"c\":3}\n")
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn knows_when_the_next_frame_needs_no_read() {
        let mut reader = LineReader::new(
            Chunked {
                data: b"one\ntwo\nthr",
                chunk: 1024,
            },
            100,
        );
        assert!(!reader.has_frame_buffered(), "nothing read yet");
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"one\n"));
        assert!(reader.has_frame_buffered(), "two is buffered");
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"two\n"));
        assert!(!reader.has_frame_buffered(), "thr has no newline yet");
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"thr\n"));
        assert!(reader.has_frame_buffered(), "the end of input is known");
        assert_eq!(reader.read_frame().unwrap(), Frame::Eof);
    }

    #[test]
    fn a_line_can_be_taken_with_its_buffer() {
        let mut reader = LineReader::new(
            Chunked {
                data: b"one\r\ntwo\nthree\nfo",
                chunk: 1024,
            },
            100,
        );
        let mut spare = Vec::new();
        assert_eq!(reader.take_line(&mut spare), None, "no line returned yet");
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"one\n"));
        let (buffer, line) = reader.take_line(&mut spare).unwrap();
        assert_eq!(&buffer[line], b"one\n");
        assert_eq!(reader.take_line(&mut spare), None, "taken already");
        // The reader goes on with what it had read after the line, in the spare buffer.
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"two\n"));
        let mut spare = buffer;
        let (buffer, line) = reader.take_line(&mut spare).unwrap();
        assert_eq!(&buffer[line], b"two\n");
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"three\n"));
        assert_eq!(reader.read_frame().unwrap(), Frame::Line(b"fo\n"));
        let (buffer, line) = reader.take_line(&mut spare).unwrap();
        assert_eq!(&buffer[line], b"fo\n");
        assert_eq!(reader.read_frame().unwrap(), Frame::Eof);
        assert_eq!(reader.take_line(&mut spare), None, "no line at the end");
    }

    #[test]
    fn bare_cr_stays_in_the_line() {
        assert_eq!(
            frames(b"A\rB\nC\r\r\n", 100, 4),
            vec![line("A\rB\n"), line("C\r\n")]
        );
    }

    #[test]
    fn over_long_lines_are_dropped_whole() {
        let long = "x".repeat(50);
        let input = format!("ok\n{long}\nafter\n{long}");
        for chunk in [1, 5, 16, 1000] {
            assert_eq!(
                frames(input.as_bytes(), 10, chunk),
                vec![line("ok\n"), Err(50), line("after\n"), Err(50)],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn limit_counts_content_not_the_ending() {
        assert_eq!(
            frames(b"12345\r\n123456\n", 5, 3),
            vec![line("12345\n"), Err(6)]
        );
    }
}
