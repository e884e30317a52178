//! Just enough JSON for steps that read a few members of a document and set
//! a few others, without decoding it: lookups walk the top-level members and
//! skip the values they do not need; the [`Editor`] copies the members it
//! does not change byte for byte. They assume a well-formed document (the
//! host checks the JSON data of events) and never read outside the document
//! or panic on a malformed one.

use std::borrow::Cow;
use std::io::Write;

/// One value of a JSON document, as the bytes that spell it (no copy). The
/// default is a missing value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<'a> {
    raw: &'a [u8],
}

impl<'a> Json<'a> {
    /// The value spelled by `raw`, surrounding white space ignored.
    #[inline]
    pub fn new(raw: &'a [u8]) -> Self {
        let start = skip_space(raw, 0);
        let mut end = raw.len();
        while end > start && is_space(raw[end - 1]) {
            end -= 1;
        }
        Json {
            raw: &raw[start..end],
        }
    }

    pub(crate) fn missing() -> Self {
        Json { raw: &[] }
    }

    /// The value's bytes as they appear in the document.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Reports whether the value was found.
    #[inline]
    pub fn exists(&self) -> bool {
        !self.raw.is_empty()
    }

    /// Reports whether the value is the literal `null`.
    #[inline]
    pub fn is_null(&self) -> bool {
        self.raw == b"null"
    }

    /// The value of a JSON string. Without escapes it borrows the document;
    /// with escapes it is decoded into a new string.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let r = self.raw;
        if r.len() < 2 || r[0] != b'"' || r[r.len() - 1] != b'"' {
            return None;
        }
        let body = &r[1..r.len() - 1];
        if body.contains(&b'\\') {
            return unescape(body).map(Cow::Owned);
        }
        crate::abi::utf8(body).map(Cow::Borrowed)
    }

    /// The value of a JSON number, as the nearest f64 (as Go's
    /// `strconv.ParseFloat` gives it); `None` for anything else, and for a
    /// number beyond the range of f64.
    pub fn as_f64(&self) -> Option<f64> {
        if !is_number(self.raw) {
            return None;
        }
        // SAFETY: a JSON number is ASCII.
        let v: f64 = unsafe { std::str::from_utf8_unchecked(self.raw) }
            .parse()
            .ok()?;
        if v.is_finite() {
            Some(v)
        } else {
            None
        }
    }

    /// The value of a JSON number that is an integer within i64, written
    /// without fraction or exponent.
    pub fn as_i64(&self) -> Option<i64> {
        if !is_number(self.raw)
            || self
                .raw
                .iter()
                .any(|&c| c == b'.' || c == b'e' || c == b'E')
        {
            return None;
        }
        // SAFETY: a JSON number is ASCII.
        unsafe { std::str::from_utf8_unchecked(self.raw) }
            .parse()
            .ok()
    }

    /// The value of `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.raw {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// The member `key` of an object value.
    pub fn get(&self, key: &str) -> Json<'a> {
        lookup(self.raw, key)
    }
}

#[inline]
fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n' || c == b'\r'
}

#[inline]
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

/// Reports whether b is a number as JSON spells it:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_number(b: &[u8]) -> bool {
    let digits = |mut i: usize| {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i > s)
    };
    let mut i = 0;
    if i < b.len() && b[i] == b'-' {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i).0,
        _ => return false,
    }
    if i < b.len() && b[i] == b'.' {
        let (j, some) = digits(i + 1);
        if !some {
            return false;
        }
        i = j;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let (j, some) = digits(i);
        if !some {
            return false;
        }
        i = j;
    }
    i == b.len()
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `x` that are zero, as their high bits; the lowest set bit
/// is exact (a borrow only carries upwards from a zero byte).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Returns the index after the string starting at `b[i] == '"'`. It looks
/// for the closing quote 8 bytes at a time: long strings are most of the
/// bytes of a document.
#[inline]
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        while i + 8 <= b.len() {
            // SAFETY: b[i..i+8] is in b.
            let w = unsafe { (b.as_ptr().add(i) as *const u64).read_unaligned() }.to_le();
            let m = zero_bytes(w ^ (ONES * b'"' as u64)) | zero_bytes(w ^ (ONES * b'\\' as u64));
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Returns the index after the value starting at `b[i]`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let start = i;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            if i == start {
                None
            } else {
                Some(i)
            }
        }
    }
}

/// Calls `f` for each top-level member of the JSON object `doc`, with the
/// key as spelled (quotes included) and the value's bytes, until `f`
/// returns false. It reports whether `doc` was walked as an object up to
/// where `f` stopped, or to its closing brace.
pub fn members<'a>(doc: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8]) -> bool) -> bool {
    let mut i = skip_space(doc, 0);
    if i >= doc.len() || doc[i] != b'{' {
        return false;
    }
    i = skip_space(doc, i + 1);
    if i < doc.len() && doc[i] == b'}' {
        return true;
    }
    while i < doc.len() {
        if doc[i] != b'"' {
            return false;
        }
        let kend = match skip_string(doc, i) {
            Some(k) => k,
            None => return false,
        };
        let key = &doc[i..kend];
        i = skip_space(doc, kend);
        if i >= doc.len() || doc[i] != b':' {
            return false;
        }
        i = skip_space(doc, i + 1);
        let vend = match skip_value(doc, i) {
            Some(v) => v,
            None => return false,
        };
        if !f(key, &doc[i..vend]) {
            return true;
        }
        i = skip_space(doc, vend);
        if i >= doc.len() {
            return false;
        }
        match doc[i] {
            b',' => i = skip_space(doc, i + 1),
            b'}' => return true,
            _ => return false,
        }
    }
    false
}

/// The member `key` of the JSON object `doc` (the first, if it repeats):
/// a missing value when there is none or `doc` is not an object.
pub fn lookup<'a>(doc: &'a [u8], key: &str) -> Json<'a> {
    let mut found = Json::missing();
    members(doc, |k, v| {
        if key_equals(k, key.as_bytes()) {
            found = Json { raw: v };
            return false;
        }
        true
    });
    found
}

/// Compares a quoted JSON key with a key, by its text: the key of
/// `{"\n":1}` is a newline, not a backslash and an n.
#[inline]
fn key_equals(quoted: &[u8], key: &[u8]) -> bool {
    let body = &quoted[1..quoted.len() - 1];
    // An escape takes more bytes than the text it stands for, so a body
    // with escapes is longer than the key it may equal, and one without
    // equals it byte for byte.
    if body.len() == key.len() {
        body == key && !body.contains(&b'\\')
    } else {
        body.len() > key.len()
            && body.contains(&b'\\')
            && unescape(body).map_or(false, |u| u.as_bytes() == key)
    }
}

fn hex4(s: &[u8], i: usize) -> Option<u32> {
    let h = s.get(i..i + 4)?;
    let mut r = 0u32;
    for &c in h {
        let d = (c as char).to_digit(16)?;
        r = r << 4 | d;
    }
    Some(r)
}

/// Decodes the body of a JSON string (between the quotes). A lone
/// surrogate becomes U+FFFD.
fn unescape(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let e = *s.get(i)?;
        match e {
            b'"' | b'\\' | b'/' => out.push(e),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let mut r = hex4(s, i + 1)?;
                i += 4;
                if (0xd800..0xe000).contains(&r) {
                    let low = if s.get(i + 1) == Some(&b'\\') && s.get(i + 2) == Some(&b'u') {
                        hex4(s, i + 3)
                    } else {
                        None
                    };
                    match low {
                        Some(lo)
                            if (0xd800..0xdc00).contains(&r) && (0xdc00..0xe000).contains(&lo) =>
                        {
                            r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
                            i += 6;
                        }
                        _ => r = 0xfffd,
                    }
                }
                let ch = char::from_u32(r).unwrap_or('\u{fffd}');
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            }
            _ => return None,
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Appends `s` as a JSON string, escaped as Go's encoding/json escapes it
/// without HTML escaping (and as the Go SDK does): `"` and `\`, control
/// characters (`\b \f \n \r \t`, else `\u00XX`), U+2028 and U+2029.
pub fn append_string(b: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let s = s.as_bytes();
    b.reserve(s.len() + 2);
    b.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c >= 0x20 && c != b'"' && c != b'\\' && c != 0xe2 {
            i += 1;
            continue;
        }
        if c == 0xe2 {
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            if i + 2 < s.len() && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9) {
                b.extend_from_slice(&s[start..i]);
                b.extend_from_slice(b"\\u202");
                b.push(if s[i + 2] == 0xa8 { b'8' } else { b'9' });
                i += 3;
                start = i;
            } else {
                i += 1;
            }
            continue;
        }
        b.extend_from_slice(&s[start..i]);
        match c {
            b'"' | b'\\' => b.extend_from_slice(&[b'\\', c]),
            8 => b.extend_from_slice(b"\\b"),
            12 => b.extend_from_slice(b"\\f"),
            b'\n' => b.extend_from_slice(b"\\n"),
            b'\r' => b.extend_from_slice(b"\\r"),
            b'\t' => b.extend_from_slice(b"\\t"),
            _ => b.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]),
        }
        i += 1;
        start = i;
    }
    b.extend_from_slice(&s[start..]);
    b.push(b'"');
}

/// Appends an integer in decimal.
pub(crate) fn append_i64(b: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        b.push(b'-');
    }
    b.extend_from_slice(&digits[i..]);
}

/// Appends a float in the shortest form that reads back the same, spelled
/// as Go's `strconv.FormatFloat(v, 'g', -1, 64)` spells it (`1e+06`,
/// `0.0001`, `1.5e-07`); NaN and infinities, which JSON cannot spell,
/// become `null`.
fn append_f64(b: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        b.extend_from_slice(b"null");
        return;
    }
    // Rust's shortest digits, in exponent form: "1.234567e6", "-1.5e-7".
    let start = b.len();
    let _ = write!(b, "{:e}", v);
    let e = start
        + b[start..]
            .iter()
            .position(|&c| c == b'e')
            .unwrap_or(b.len() - start);
    let exp: i32 = std::str::from_utf8(&b[e + 1..])
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exp) {
        // %e with at least two exponent digits.
        b.truncate(e);
        b.push(b'e');
        b.push(if exp < 0 { b'-' } else { b'+' });
        if exp.abs() < 10 {
            b.push(b'0');
        }
        append_i64(b, exp.abs() as i64);
    } else {
        b.truncate(start);
        let _ = write!(b, "{}", v);
    }
}

/// Rewrites the top-level members of a JSON object: it sets, replaces and
/// deletes members and copies the others as they are, without decoding the
/// document. It keeps its buffers, so a step that keeps one `Editor`
/// allocates nothing per event once they have grown.
///
/// ```ignore
/// let doc = ed.reset().set_str("region", r).set_i64("amount_cents", c).apply(e.data());
/// ```
#[derive(Default)]
pub struct Editor {
    edits: Vec<Edit>,
    keys: Vec<u8>,
    vals: Vec<u8>,
    out: Vec<u8>,
}

struct Edit {
    key: (usize, usize),
    val: (usize, usize),
    del: bool,
    // A key may be edited more than once: its first edit stands for all,
    // last is the index of the one that wins, later marks the others.
    last: usize,
    later: bool,
    used: bool,
}

impl Editor {
    /// A new editor.
    pub fn new() -> Editor {
        Editor::default()
    }

    /// Forgets the edits, keeping the buffers.
    pub fn reset(&mut self) -> &mut Editor {
        self.edits.clear();
        self.keys.clear();
        self.vals.clear();
        self.out.clear();
        self
    }

    fn add(&mut self, key: &str, val_start: usize, del: bool) -> &mut Editor {
        let n = self.edits.len();
        let mut later = false;
        for e in self.edits.iter_mut() {
            if !e.later && &self.keys[e.key.0..e.key.1] == key.as_bytes() {
                e.last = n;
                later = true;
                break;
            }
        }
        let k = self.keys.len();
        self.keys.extend_from_slice(key.as_bytes());
        self.edits.push(Edit {
            key: (k, self.keys.len()),
            val: (val_start, self.vals.len()),
            del,
            last: n,
            later,
            used: false,
        });
        self
    }

    /// Sets `key` to a value given as JSON, which must be well formed.
    pub fn set_raw(&mut self, key: &str, raw: &[u8]) -> &mut Editor {
        let s = self.vals.len();
        self.vals.extend_from_slice(raw);
        self.add(key, s, false)
    }

    /// Sets `key` to a string.
    pub fn set_str(&mut self, key: &str, v: &str) -> &mut Editor {
        let s = self.vals.len();
        append_string(&mut self.vals, v);
        self.add(key, s, false)
    }

    /// Sets `key` to an integer.
    pub fn set_i64(&mut self, key: &str, v: i64) -> &mut Editor {
        let s = self.vals.len();
        append_i64(&mut self.vals, v);
        self.add(key, s, false)
    }

    /// Sets `key` to a number, in the shortest form that reads back the
    /// same; NaN and infinities, which JSON cannot spell, become null.
    pub fn set_f64(&mut self, key: &str, v: f64) -> &mut Editor {
        let s = self.vals.len();
        append_f64(&mut self.vals, v);
        self.add(key, s, false)
    }

    /// Sets `key` to `true` or `false`.
    pub fn set_bool(&mut self, key: &str, v: bool) -> &mut Editor {
        let s = self.vals.len();
        self.vals
            .extend_from_slice(if v { b"true" } else { b"false" });
        self.add(key, s, false)
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &str) -> &mut Editor {
        let s = self.vals.len();
        self.add(key, s, true)
    }

    /// Returns `doc`, a JSON object, with the edits applied: members that
    /// are set keep their place (the first of a repeated key; later ones
    /// are copied as they are), new ones come last in the order they were
    /// set. When a key is edited more than once its last edit wins, and a
    /// new key takes the place of its first edit. White space between the
    /// top-level members is dropped. `None` when `doc` is not an object.
    /// The result is valid until the editor is used again.
    pub fn apply(&mut self, doc: &[u8]) -> Option<&[u8]> {
        let Editor {
            edits,
            keys,
            vals,
            out,
        } = self;
        for e in edits.iter_mut() {
            e.used = false;
        }
        out.clear();
        out.reserve(doc.len() + vals.len() + keys.len() + 4 * edits.len() + 2);
        out.push(b'{');
        let mut first = true;
        let ok = members(doc, |k, mut v| {
            let mut i = 0;
            while i < edits.len() {
                let e = &edits[i];
                if !e.later && !e.used && key_equals(k, &keys[e.key.0..e.key.1]) {
                    edits[i].used = true;
                    let w = &edits[edits[i].last];
                    if w.del {
                        return true;
                    }
                    v = &vals[w.val.0..w.val.1];
                    break;
                }
                i += 1;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(k);
            out.push(b':');
            out.extend_from_slice(v);
            true
        });
        if !ok {
            return None;
        }
        for e in edits.iter() {
            if e.later || e.used {
                continue;
            }
            let w = &edits[e.last];
            if w.del {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            // SAFETY: keys holds the &str keys of the edits, back to back.
            append_string(out, unsafe {
                std::str::from_utf8_unchecked(&keys[e.key.0..e.key.1])
            });
            out.push(b':');
            out.extend_from_slice(&vals[w.val.0..w.val.1]);
        }
        out.push(b'}');
        Some(out)
    }
}
