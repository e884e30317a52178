//! The byte layouts of ABI 1.0: records and batches (section 7), the inputs
//! of the step exports (section 8) and results (section 9). Plugins need
//! none of it (the macros and [`crate::Event`] do the work); it is public
//! for tests and for code that builds inputs or reads results.

use std::fmt;

use crate::aggregate::Window;
use crate::event::{Data, DataKind, Event};
use crate::output::OutEvent;

/// The size of a record's fixed header.
pub const HEADER_SIZE: usize = 48;
/// The most bytes an event type may have.
pub const MAX_TYPE_LEN: usize = 255;
/// The size of a result's header (Status, Count, ErrorCount).
pub const RESULT_HEADER_SIZE: usize = 12;

/// The kind bits of `aegis_kinds`.
pub const KIND_FILTER: u32 = 1;
/// The map kind bit.
pub const KIND_MAP: u32 = 2;
/// The aggregate kind bit.
pub const KIND_AGGREGATE: u32 = 4;

/// The status of a result (ABI section 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// The call succeeded; event errors may still report failed events.
    Ok = 0,
    /// The module could not decode its input.
    BadInput = 1,
    /// `aegis_init` refused the configuration.
    BadConfig = 2,
    /// The module's code failed for the whole call.
    Failed = 3,
    /// The export belongs to a kind the module does not implement.
    Unsupported = 4,
}

/// Packs a region into the `i64` a step export returns: `ptr << 32 | len`.
#[inline]
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((ptr as u64) << 32 | len as u64) as i64
}

/// Reads a little-endian u32 at `b[at..at+4]`.
#[inline]
pub fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Reads a little-endian i64 at `b[at..at+8]`.
#[inline]
pub fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(x)
}

// UTF-8 validation with a shift-based DFA: a state is a bit offset, and
// the row of a byte holds, at the offset of each state, the offset of the
// state that byte leads to, so that one step is a table load and a shift
// (which WebAssembly takes modulo 64). The states: 0 accept (between
// characters), 1 error (stays), 2..4 expecting 1..3 continuation bytes,
// and the second byte of a character whose range is narrower than 80..BF:
// 5 after E0 (A0..BF: no overlong form), 6 after ED (80..9F: no
// surrogate), 7 after F0 (90..BF: no overlong form), 8 after F4 (80..8F:
// nothing above U+10FFFF).
const UTF8_ACCEPT: u64 = 0;
const UTF8_ERROR: u64 = 6;

const fn utf8_next(state: u64, x: u64) -> u64 {
    let cont = x >= 0x80 && x <= 0xbf;
    match state {
        0 => match x {
            0x00..=0x7f => 0,
            0xc2..=0xdf => 2,
            0xe0 => 5,
            0xe1..=0xec | 0xee..=0xef => 3,
            0xed => 6,
            0xf0 => 7,
            0xf1..=0xf3 => 4,
            0xf4 => 8,
            _ => 1,
        },
        2 if cont => 0,
        3 if cont => 2,
        4 if cont => 3,
        5 if x >= 0xa0 && x <= 0xbf => 2,
        6 if x >= 0x80 && x <= 0x9f => 2,
        7 if x >= 0x90 && x <= 0xbf => 3,
        8 if x >= 0x80 && x <= 0x8f => 3,
        _ => 1,
    }
}

const fn utf8_rows() -> [u64; 256] {
    let mut rows = [0u64; 256];
    let mut x = 0;
    while x < 256 {
        let mut s = 0;
        while s < 9 {
            rows[x] |= (6 * utf8_next(s, x as u64)) << (6 * s);
            s += 1;
        }
        x += 1;
    }
    rows
}

static UTF8_ROWS: [u64; 256] = utf8_rows();

/// `b` as text if it is valid UTF-8 as Unicode defines it (what
/// `std::str::from_utf8` accepts). It takes runs of ASCII 8 bytes at a time
/// (WebAssembly loads at any address) and other bytes with a table-driven
/// automaton: the standard library's check costs several times more
/// instructions per byte in WebAssembly, which the host counts as fuel.
pub fn utf8(b: &[u8]) -> Option<&str> {
    #[inline(always)]
    fn ascii_word(b: &[u8], i: usize) -> bool {
        // SAFETY: the callers make sure that i + 8 <= b.len().
        let w = unsafe { (b.as_ptr().add(i) as *const u64).read_unaligned() };
        w & 0x8080_8080_8080_8080 == 0
    }
    let n = b.len();
    let mut i = 0;
    let mut state = UTF8_ACCEPT;
    while i + 8 <= n {
        // Between characters: skip ASCII words.
        if ascii_word(b, i) {
            i += 8;
            continue;
        }
        // Else 8 bytes at a time through the automaton, until a word ends
        // between characters.
        loop {
            let c = &b[i..i + 8];
            let mut s = state;
            s = UTF8_ROWS[c[0] as usize] >> (s & 63);
            s = UTF8_ROWS[c[1] as usize] >> (s & 63);
            s = UTF8_ROWS[c[2] as usize] >> (s & 63);
            s = UTF8_ROWS[c[3] as usize] >> (s & 63);
            s = UTF8_ROWS[c[4] as usize] >> (s & 63);
            s = UTF8_ROWS[c[5] as usize] >> (s & 63);
            s = UTF8_ROWS[c[6] as usize] >> (s & 63);
            s = UTF8_ROWS[c[7] as usize] >> (s & 63);
            state = s & 63;
            i += 8;
            if state == UTF8_ERROR {
                return None;
            }
            if state == UTF8_ACCEPT || i + 8 > n {
                break;
            }
        }
    }
    // The last bytes: when they are ASCII and follow a character, the last
    // word (which may overlap what was checked) says so at once.
    if !(state == UTF8_ACCEPT && n >= 8 && ascii_word(b, n - 8)) {
        for &x in &b[i..] {
            state = UTF8_ROWS[x as usize] >> (state & 63);
        }
        if state & 63 != UTF8_ACCEPT {
            return None;
        }
    }
    // SAFETY: checked.
    Some(unsafe { std::str::from_utf8_unchecked(b) })
}

/// An input that does not follow the ABI's layouts. With a conforming host
/// it never happens; the SDK answers it with status 1 (bad input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The record it is about, if any.
    pub record: Option<u32>,
    /// What is wrong.
    pub what: &'static str,
}

impl DecodeError {
    fn new(what: &'static str) -> DecodeError {
        DecodeError { record: None, what }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.record {
            Some(i) => write!(f, "batch record {}: {}", i, self.what),
            None => f.write_str(self.what),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Splits the record at the start of `b` from the bytes after it. It
/// checks the framing (the size against the bytes left, the lengths of
/// type, source and data against the size), the data kind, and that type
/// and source are UTF-8, as the views hand them out as `&str`; it trusts
/// the rest (metadata, JSON), which the host guarantees.
pub fn split_record(b: &[u8]) -> Result<(Event<'_>, &[u8]), DecodeError> {
    if b.len() < HEADER_SIZE {
        return Err(DecodeError::new("record header truncated"));
    }
    let size = read_u32(b, 0) as u64;
    if size > b.len() as u64 {
        return Err(DecodeError::new("record longer than the bytes left"));
    }
    let tl = read_u32(b, 36) as u64;
    let sl = read_u32(b, 40) as u64;
    let dl = read_u32(b, 44) as u64;
    if HEADER_SIZE as u64 + tl + sl + dl > size {
        return Err(DecodeError::new("record fields longer than the record"));
    }
    if DataKind::from_u8(b[32]).is_none() {
        return Err(DecodeError::new("unknown data kind"));
    }
    let (rec, rest) = b.split_at(size as usize);
    let (tl, sl, dl) = (tl as usize, sl as usize, dl as usize);
    let t = HEADER_SIZE;
    let s = t + tl;
    let d = s + sl;
    let m = d + dl;
    let ty = utf8(&rec[t..s]).ok_or(DecodeError::new("record type is not UTF-8"))?;
    let source = utf8(&rec[s..d]).ok_or(DecodeError::new("record source is not UTF-8"))?;
    Ok((
        Event::from_parts(&rec[..HEADER_SIZE], ty, source, &rec[d..m], &rec[m..]),
        rest,
    ))
}

/// The records of a batch, in order: an iterator of events that ends with
/// an error if the batch's framing is wrong (a record cut short, bytes after
/// the last record).
pub struct Records<'a> {
    rest: &'a [u8],
    left: u32,
    index: u32,
    failed: bool,
}

/// Iterates over the records of the batch `b`.
pub fn records(b: &[u8]) -> Records<'_> {
    if b.len() < 4 {
        // index u32::MAX marks a batch without its header.
        return Records {
            rest: &[],
            left: 0,
            index: u32::MAX,
            failed: false,
        };
    }
    Records {
        rest: &b[4..],
        left: read_u32(b, 0),
        index: 0,
        failed: false,
    }
}

impl<'a> Records<'a> {
    /// The number of records the batch says it holds, minus those read.
    pub fn left(&self) -> u32 {
        self.left
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Event<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.rest.is_empty() && self.index != u32::MAX {
                return None;
            }
            self.failed = true;
            let what = if self.index == u32::MAX {
                "batch header truncated"
            } else {
                "bytes after the last record"
            };
            return Some(Err(DecodeError::new(what)));
        }
        match split_record(self.rest) {
            Ok((e, rest)) => {
                self.rest = rest;
                self.left -= 1;
                self.index += 1;
                Some(Ok(e))
            }
            Err(mut err) => {
                self.failed = true;
                err.record = Some(self.index);
                Some(Err(err))
            }
        }
    }
}

/// Reads the region `[4, 4+len)` after a u32 length at the start of `b`.
fn len_prefixed<'a>(b: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::new(what));
    }
    let n = read_u32(b, 0) as u64;
    if n > (b.len() - 4) as u64 {
        return Err(DecodeError::new(what));
    }
    let n = n as usize;
    Ok((&b[4..4 + n], &b[4 + n..]))
}

/// A State (ABI section 8): a group key and an accumulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State<'a> {
    /// The group key, UTF-8; empty when the step is not grouped.
    pub key: &'a [u8],
    /// The accumulator; empty for a group that has seen no events yet.
    pub acc: &'a [u8],
}

/// Splits a State from the bytes after it (an `aegis_aggregate` input: the
/// State, then a batch).
pub fn parse_state(b: &[u8]) -> Result<(State<'_>, &[u8]), DecodeError> {
    let (key, rest) = len_prefixed(b, "state key truncated")?;
    let (acc, rest) = len_prefixed(rest, "state accumulator truncated")?;
    Ok((State { key, acc }, rest))
}

/// Splits an `aegis_merge` input: the State (key and accumulator a), then
/// accumulator b.
pub fn parse_merge(b: &[u8]) -> Result<(State<'_>, &[u8]), DecodeError> {
    let (s, rest) = parse_state(b)?;
    let (other, rest) = len_prefixed(rest, "second accumulator truncated")?;
    if !rest.is_empty() {
        return Err(DecodeError::new("bytes after the second accumulator"));
    }
    Ok((s, other))
}

/// Splits an `aegis_finish` input: the State, then the window.
pub fn parse_finish(b: &[u8]) -> Result<(State<'_>, Window), DecodeError> {
    let (s, rest) = parse_state(b)?;
    if rest.len() != 16 {
        return Err(DecodeError::new("finish window is not 16 bytes"));
    }
    Ok((
        s,
        Window {
            start: read_i64(rest, 0),
            end: read_i64(rest, 8),
        },
    ))
}

/// Appends the encoding of a record: `o` with the given Index.
pub fn append_record(buf: &mut Vec<u8>, index: u32, o: &OutEvent<'_>) {
    let mut num = [0u8; 8];
    let data: &[u8] = match o.data {
        Data::Null => &[],
        Data::Bool(v) => {
            num[0] = v as u8;
            &num[..1]
        }
        Data::Int(v) => {
            num = v.to_le_bytes();
            &num
        }
        Data::Float(v) => {
            num = v.to_bits().to_le_bytes();
            &num
        }
        Data::String(s) => s.as_bytes(),
        Data::Bytes(b) | Data::Json(b) => b,
    };
    let meta = o.meta_bytes();
    let size = HEADER_SIZE + o.event_type.len() + o.source.len() + data.len() + meta.len();
    let mut h = [0u8; HEADER_SIZE];
    h[0..4].copy_from_slice(&(size as u32).to_le_bytes());
    h[4..8].copy_from_slice(&index.to_le_bytes());
    h[8..24].copy_from_slice(&o.id);
    h[24..32].copy_from_slice(&o.time.to_le_bytes());
    h[32] = o.data.kind() as u8;
    // h[33], Flags, stays 0.
    h[34..36].copy_from_slice(&o.meta_count().to_le_bytes());
    h[36..40].copy_from_slice(&(o.event_type.len() as u32).to_le_bytes());
    h[40..44].copy_from_slice(&(o.source.len() as u32).to_le_bytes());
    h[44..48].copy_from_slice(&(data.len() as u32).to_le_bytes());
    buf.reserve(size);
    buf.extend_from_slice(&h);
    buf.extend_from_slice(o.event_type.as_bytes());
    buf.extend_from_slice(o.source.as_bytes());
    buf.extend_from_slice(data);
    buf.extend_from_slice(meta);
}

/// Builds a result (ABI section 9) in buffers it keeps from call to call:
/// [`reset`](Self::reset), then the body ([`push_index`](Self::push_index),
/// [`push_record`](Self::push_record) or [`body`](Self::body)) and the event
/// errors ([`add_error`](Self::add_error)), then [`finish`](Self::finish);
/// or [`fail`](Self::fail) for the whole call.
#[derive(Default)]
pub struct ResultWriter {
    buf: Vec<u8>,
    errs: Vec<u8>,
    count: u32,
    nerrs: u32,
    // The body is bytes (an accumulator), not items.
    bytes: bool,
}

impl ResultWriter {
    /// An empty writer.
    pub const fn new() -> ResultWriter {
        ResultWriter {
            buf: Vec::new(),
            errs: Vec::new(),
            count: 0,
            nerrs: 0,
            bytes: false,
        }
    }

    /// Starts a new result, keeping the buffers.
    #[inline]
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; RESULT_HEADER_SIZE]);
        self.errs.clear();
        self.count = 0;
        self.nerrs = 0;
        self.bytes = false;
    }

    /// Adds a kept index to a filter result.
    #[inline]
    pub fn push_index(&mut self, index: u32) {
        self.buf.extend_from_slice(&index.to_le_bytes());
        self.count += 1;
    }

    /// Adds a record to a map or finish result.
    pub fn push_record(&mut self, index: u32, o: &OutEvent<'_>) {
        append_record(&mut self.buf, index, o);
        self.count += 1;
    }

    /// The body of an aggregate or merge result, the accumulator, to append
    /// to; Count is the number of bytes appended.
    pub fn body(&mut self) -> &mut Vec<u8> {
        self.bytes = true;
        &mut self.buf
    }

    /// Reports that the event at `index` failed.
    #[inline]
    pub fn add_error(&mut self, index: u32, code: u32, message: &str) {
        self.errs.extend_from_slice(&index.to_le_bytes());
        self.errs.extend_from_slice(&code.to_le_bytes());
        self.errs
            .extend_from_slice(&(message.len() as u32).to_le_bytes());
        self.errs.extend_from_slice(message.as_bytes());
        self.nerrs += 1;
    }

    /// Completes a successful result and returns it. For a body appended
    /// with [`body`](Self::body), Count is its length in bytes.
    pub fn finish(&mut self) -> &[u8] {
        if self.bytes {
            self.count = (self.buf.len() - RESULT_HEADER_SIZE) as u32;
        }
        let (count, nerrs) = (self.count, self.nerrs);
        self.buf[0..4].copy_from_slice(&(Status::Ok as u32).to_le_bytes());
        self.buf[4..8].copy_from_slice(&count.to_le_bytes());
        self.buf[8..12].copy_from_slice(&nerrs.to_le_bytes());
        self.buf.extend_from_slice(&self.errs);
        &self.buf
    }

    /// Returns a result that fails the whole call, discarding the body and
    /// the event errors.
    pub fn fail(&mut self, status: Status, message: &str) -> &[u8] {
        self.buf.clear();
        self.buf.extend_from_slice(&(status as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(message.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(message.as_bytes());
        self.errs.clear();
        self.count = 0;
        self.nerrs = 0;
        &self.buf
    }
}
