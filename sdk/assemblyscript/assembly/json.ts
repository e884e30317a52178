// A small JSON toolkit that works on the UTF-8 bytes of a document in place:
// find a member without decoding the rest, read numbers as Go's strconv
// does, set members of an object (Editor), escape strings as Go's
// encoding/json does, and check that a document is well formed.

import {
  ByteBuf, decodeUTF8, utf8Equals, utf8SeqLen, encodeUTF8, utf8Length, ONES, HIGHS, bytesEqual, bytesBelow, firstByte,
} from "./bytes";

const QUOTES: u64 = 0x22 * ONES;
const BACKSLASHES: u64 = 0x5c * ONES;
const SPACES: u64 = 0x20 * ONES;
import { parseF64, parseI64, numberOK } from "./number";

/**
 * One value of a JSON document: the bytes that spell it, in place (no
 * copy). A missing value has length 0. A value read from an event is valid
 * during the callback that received the event.
 */
export class JSONValue {
  constructor(
    /** The address of the value's first byte. */
    public ptr: usize = 0,
    /** Its length in bytes; 0 for a missing value. */
    public len: i32 = 0,
    /** What keeps the bytes alive when the SDK copied them (a configuration). */
    public owner: ArrayBuffer | null = null,
  ) {}

  /** Whether the value was found. */
  @inline get exists(): bool {
    return this.len > 0;
  }

  isNull(): bool {
    return this.len == 4 && load<u32>(this.ptr) == 0x6c6c756e; // null
  }

  isString(): bool {
    return this.len >= 2 && load<u8>(this.ptr) == 0x22;
  }

  isObject(): bool {
    return this.len >= 2 && load<u8>(this.ptr) == 0x7b;
  }

  isArray(): bool {
    return this.len >= 2 && load<u8>(this.ptr) == 0x5b;
  }

  isBool(): bool {
    return this.isTrue() || (this.len == 5 && load<u32>(this.ptr) == 0x736c6166 && load<u8>(this.ptr, 4) == 0x65); // false
  }

  private isTrue(): bool {
    return this.len == 4 && load<u32>(this.ptr) == 0x65757274; // true
  }

  /** The value of true or false; false for anything else. */
  asBool(): bool {
    return this.isTrue();
  }

  /** Whether the value is a number that fits in a float64. */
  isNumber(): bool {
    parseF64(this.ptr, this.len);
    return numberOK;
  }

  /**
   * The value of a JSON number as a float64, correctly rounded (as Go's
   * strconv.ParseFloat). NaN when the value is not a number or is too
   * large for a float64: JSON has no NaN, so NaN always means "no number".
   */
  asF64(): f64 {
    return parseF64(this.ptr, this.len);
  }

  /** Whether the value is an integer within int64 (no fraction, no exponent). */
  isI64(): bool {
    parseI64(this.ptr, this.len);
    return numberOK;
  }

  /** The value of an integer within int64 (see isI64); 0 otherwise. */
  asI64(): i64 {
    return parseI64(this.ptr, this.len);
  }

  /** The value of a JSON string, unescaped; null when it is not a string. */
  asString(): string | null {
    if (!this.isString()) return null;
    const body = this.ptr + 1;
    const n = <usize>this.len - 2;
    if (hasBackslash(body, n)) {
      const b = scratchText;
      if (!unescapeInto(b, body, n)) return null;
      return decodeUTF8(b.ptr, b.len);
    }
    return decodeUTF8(body, n);
  }

  /**
   * Whether the value is the JSON string s, compared by its text (escapes
   * decoded), without allocating.
   */
  stringEquals(s: string): bool {
    return this.isString() && quotedEquals(this.ptr, this.len, s);
  }

  /** The member key of an object value; a missing value if none. */
  get(key: string): JSONValue {
    const v = lookup(this.ptr, this.len, key);
    v.owner = this.owner;
    return v;
  }

  /** The value's JSON text, as it appears in the document. */
  toString(): string {
    return decodeUTF8(this.ptr, this.len);
  }
}

// Decoded text of a string with escapes, reused.
const scratchText = new ByteBuf(true);
const scratchKey = new ByteBuf(true);

function hasBackslash(p: usize, n: usize): bool {
  const end = p + n;
  for (; p + 8 <= end; p += 8) if (bytesEqual(load<u64>(p), BACKSLASHES) != 0) return true;
  for (; p < end; p++) if (load<u8>(p) == 0x5c) return true;
  return false;
}

/**
 * Compares the JSON string (quotes included) of len bytes at p with s by its
 * text: the key of {"\u0061":1} is "a".
 */
export function quotedEquals(p: usize, len: i32, s: string): bool {
  const body = p + 1;
  const n = <usize>len - 2;
  if (hasBackslash(body, n)) {
    const b = scratchKey;
    return unescapeInto(b, body, n) && utf8Equals(b.ptr, b.len, s);
  }
  return utf8Equals(body, n, s);
}

@inline function isSpace(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

function skipSpace(p: usize, end: usize): usize {
  while (p < end && isSpace(<u32>load<u8>(p))) p++;
  return p;
}

/** The address after the string whose '"' is at p, or 0 if it does not end before end. */
function skipString(p: usize, end: usize): usize {
  p++;
  while (p < end) {
    while (p + 8 <= end) {
      const w = load<u64>(p);
      const m = bytesEqual(w, QUOTES) | bytesEqual(w, BACKSLASHES);
      if (m != 0) {
        p += firstByte(m);
        break;
      }
      p += 8;
    }
    if (p >= end) break;
    const c = load<u8>(p);
    if (c == 0x22) return p + 1;
    p += c == 0x5c ? 2 : 1;
  }
  return 0;
}

/**
 * The address after the value at p, or 0 if it does not end before end.
 * Like the Go SDK it finds where a value ends without checking it: a
 * string to its closing quote, an object or array to its matching bracket,
 * anything else up to a ',', '}', ']' or white space.
 */
function skipValue(p: usize, end: usize): usize {
  if (p >= end) return 0;
  const c = <u32>load<u8>(p);
  if (c == 0x22) return skipString(p, end);
  if (c == 0x7b || c == 0x5b) {
    let depth = 0;
    while (p < end) {
      const d = <u32>load<u8>(p);
      if (d == 0x22) {
        p = skipString(p, end);
        if (p == 0) return 0;
        continue;
      }
      if (d == 0x7b || d == 0x5b) depth++;
      else if (d == 0x7d || d == 0x5d) {
        depth--;
        if (depth == 0) return p + 1;
      }
      p++;
    }
    return 0;
  }
  const start = p;
  while (p < end) {
    const d = <u32>load<u8>(p);
    if (d == 0x2c || d == 0x7d || d == 0x5d || isSpace(d)) break;
    p++;
  }
  return p == start ? 0 : p;
}

/**
 * Walks the top-level members of a JSON object in place:
 *
 *     const it = new Members(ptr, len);
 *     while (it.next()) { ... it.keyEquals("amount") ... it.value ... }
 *     if (!it.ok) { ... not an object ... }
 *
 * It assumes a well-formed document (the host checks JSON data) and never
 * reads outside it on a malformed one.
 */
export class Members {
  /** The member's key as spelled, quotes included. */
  keyPtr: usize = 0;
  keyLen: i32 = 0;
  /** The member's value as spelled. */
  valuePtr: usize = 0;
  valueLen: i32 = 0;
  /** After next returned false: whether the document was walked to its end as an object. */
  ok: bool = false;
  private p: usize;
  private end: usize;
  private started: bool = false;
  private done: bool = false;

  constructor(ptr: usize, len: i32) {
    this.p = ptr;
    this.end = ptr + <usize>len;
  }

  /** Restarts the walk on another document. */
  reset(ptr: usize, len: i32): Members {
    this.p = ptr;
    this.end = ptr + <usize>len;
    this.started = false;
    this.done = false;
    this.ok = false;
    return this;
  }

  /** The value as a JSONValue (it allocates). */
  get value(): JSONValue {
    return new JSONValue(this.valuePtr, this.valueLen);
  }

  /** Whether the member's key is key, compared by its text. */
  keyEquals(key: string): bool {
    return quotedEquals(this.keyPtr, this.keyLen, key);
  }

  /** Moves to the next member; false at the end (see ok). */
  next(): bool {
    if (this.done) return false;
    let p = this.p;
    const end = this.end;
    if (!this.started) {
      this.started = true;
      p = skipSpace(p, end);
      if (p >= end || load<u8>(p) != 0x7b) return this.finish(false);
      p = skipSpace(p + 1, end);
      if (p < end && load<u8>(p) == 0x7d) return this.finish(true);
    } else {
      // after the previous value: ',' or '}'
      p = skipSpace(p, end);
      if (p >= end) return this.finish(false);
      const c = load<u8>(p);
      if (c == 0x7d) return this.finish(true);
      if (c != 0x2c) return this.finish(false);
      p = skipSpace(p + 1, end);
    }
    if (p >= end || load<u8>(p) != 0x22) return this.finish(false);
    const kend = skipString(p, end);
    if (kend == 0) return this.finish(false);
    this.keyPtr = p;
    this.keyLen = <i32>(kend - p);
    p = skipSpace(kend, end);
    if (p >= end || load<u8>(p) != 0x3a) return this.finish(false);
    p = skipSpace(p + 1, end);
    const vend = skipValue(p, end);
    if (vend == 0) return this.finish(false);
    this.valuePtr = p;
    this.valueLen = <i32>(vend - p);
    this.p = vend;
    return true;
  }

  private finish(ok: bool): bool {
    this.done = true;
    this.ok = ok;
    return false;
  }
}

const lookupIter = new Members(0, 0);

/**
 * Finds the member key of the JSON object of len bytes at ptr, reading only
 * as far as it must; the first member of that name wins. A missing value
 * when there is none or the document is not an object.
 */
export function lookup(ptr: usize, len: i32, key: string): JSONValue {
  const it = lookupIter.reset(ptr, len);
  while (it.next()) {
    if (quotedEquals(it.keyPtr, it.keyLen, key)) return new JSONValue(it.valuePtr, it.valueLen);
  }
  return new JSONValue();
}

function hex4(p: usize): i32 {
  let r = 0;
  for (let i: usize = 0; i < 4; i++) {
    let c = <i32>load<u8>(p + i);
    if (c >= 0x30 && c <= 0x39) c -= 0x30;
    else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) c = (c | 0x20) - 0x61 + 10;
    else return -1;
    r = (r << 4) | c;
  }
  return r;
}

function putRune(b: ByteBuf, r: u32): void {
  const d = b.reserve(4);
  if (r < 0x80) {
    store<u8>(d, <u8>r);
    b.len += 1;
  } else if (r < 0x800) {
    store<u8>(d, <u8>(0xc0 | (r >> 6)));
    store<u8>(d, <u8>(0x80 | (r & 0x3f)), 1);
    b.len += 2;
  } else if (r < 0x10000) {
    store<u8>(d, <u8>(0xe0 | (r >> 12)));
    store<u8>(d, <u8>(0x80 | ((r >> 6) & 0x3f)), 1);
    store<u8>(d, <u8>(0x80 | (r & 0x3f)), 2);
    b.len += 3;
  } else {
    store<u8>(d, <u8>(0xf0 | (r >> 18)));
    store<u8>(d, <u8>(0x80 | ((r >> 12) & 0x3f)), 1);
    store<u8>(d, <u8>(0x80 | ((r >> 6) & 0x3f)), 2);
    store<u8>(d, <u8>(0x80 | (r & 0x3f)), 3);
    b.len += 4;
  }
}

/**
 * Decodes the body of a JSON string (between the quotes, n bytes at p) into
 * b as UTF-8; false on a bad escape. A lone surrogate becomes U+FFFD, as in
 * Go.
 */
export function unescapeInto(b: ByteBuf, p: usize, n: usize): bool {
  b.reset();
  const end = p + n;
  while (p < end) {
    // the run up to the next backslash, as it is
    let q = p;
    while (q < end && load<u8>(q) != 0x5c) q++;
    if (q > p) b.bytes(p, <i32>(q - p));
    if (q >= end) break;
    p = q + 1;
    if (p >= end) return false;
    const c = <u32>load<u8>(p);
    p++;
    let r: u32 = 0;
    switch (c) {
      case 0x22: case 0x5c: case 0x2f: r = c; break;
      case 0x62: r = 0x08; break;
      case 0x66: r = 0x0c; break;
      case 0x6e: r = 0x0a; break;
      case 0x72: r = 0x0d; break;
      case 0x74: r = 0x09; break;
      case 0x75: {
        if (p + 4 > end) return false;
        const h = hex4(p);
        if (h < 0) return false;
        p += 4;
        r = <u32>h;
        if (r >= 0xd800 && r < 0xe000) {
          // a surrogate: a pair with a following \uDC00-\uDFFF, else U+FFFD
          let paired = false;
          if (r < 0xdc00 && p + 6 <= end && load<u8>(p) == 0x5c && load<u8>(p, 1) == 0x75) {
            const h2 = hex4(p + 2);
            if (h2 >= 0xdc00 && h2 < 0xe000) {
              r = 0x10000 + ((r - 0xd800) << 10) + (<u32>h2 - 0xdc00);
              p += 6;
              paired = true;
            }
          }
          if (!paired) r = 0xfffd;
        }
        break;
      }
      default:
        return false;
    }
    putRune(b, r);
  }
  return true;
}

const HEX = memory.data<u8>([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66]);

// Writes the escape of c ('"', '\' or a control character) at d and
// returns the address after it.
@inline function escapeASCII(d: usize, c: u32): usize {
  store<u8>(d, 0x5c);
  let e: u32 = 0;
  if (c == 0x22 || c == 0x5c) e = c;
  else if (c == 0x08) e = 0x62;
  else if (c == 0x0c) e = 0x66;
  else if (c == 0x0a) e = 0x6e;
  else if (c == 0x0d) e = 0x72;
  else if (c == 0x09) e = 0x74;
  if (e != 0) {
    store<u8>(d, <u8>e, 1);
    return d + 2;
  }
  store<u32>(d, 0x3030755c); // \u00
  store<u8>(d, load<u8>(HEX + (c >> 4)), 4);
  store<u8>(d, load<u8>(HEX + (c & 15)), 5);
  return d + 6;
}

// \ufffd, \u2028 and \u2029, 6 bytes each
const ESCAPED_FFFD = memory.data<u8>([0x5c, 0x75, 0x66, 0x66, 0x66, 0x64]);
const ESCAPED_2028 = memory.data<u8>([0x5c, 0x75, 0x32, 0x30, 0x32, 0x38]);
const ESCAPED_2029 = memory.data<u8>([0x5c, 0x75, 0x32, 0x30, 0x32, 0x39]);

/** The largest run appendQuotedUTF8 escapes at once (it reserves 6 bytes per byte). */
const CHUNK: usize = 1 << 16;

/**
 * Appends the n bytes of UTF-8 at p to b as a JSON string, escaped as Go's
 * encoding/json escapes (without its HTML escaping): '"', '\', control
 * characters, U+2028 and U+2029; an invalid byte becomes \ufffd. With
 * upper, ASCII letters are upper-cased on the way.
 */
export function appendQuotedUTF8(b: ByteBuf, p: usize, n: usize, upper: bool = false): void {
  b.byte(0x22);
  while (n > 0) {
    let k = n;
    if (k > CHUNK) {
      // cut before a character, not inside one
      k = CHUNK;
      while (k > CHUNK - 4 && (load<u8>(p + k) & 0xc0) == 0x80) k--;
    }
    const d0 = b.reserve(<i32>(<usize>6 * k));
    const d = escapeRun(d0, p, p + k, upper);
    b.len += <i32>(d - d0);
    p += k;
    n -= k;
  }
  b.byte(0x22);
}

// Writes the escape of the bytes [p, end) at d (at most 6 bytes per byte)
// and returns the address after it.
function escapeRun(d: usize, p: usize, end: usize, upper: bool): usize {
  while (p < end) {
    if (!upper) {
      // plain ASCII, 8 bytes at a time, is copied as it is
      while (p + 8 <= end) {
        const w = load<u64>(p);
        const m = bytesEqual(w, QUOTES) | bytesEqual(w, BACKSLASHES) | bytesBelow(w, SPACES) | (w & HIGHS);
        if (m != 0) {
          const f = firstByte(m);
          store<u64>(d, w); // the bytes after the first special one are written over
          d += f;
          p += f;
          break;
        }
        store<u64>(d, w);
        d += 8;
        p += 8;
      }
      if (p >= end) break;
    }
    const c = <u32>load<u8>(p);
    if (c < 0x80) {
      if (c >= 0x20 && c != 0x22 && c != 0x5c) {
        store<u8>(d, <u8>(upper && c - 0x61 < 26 ? c - 0x20 : c));
        d++;
      } else {
        d = escapeASCII(d, c);
      }
      p++;
      continue;
    }
    const k = utf8SeqLen(p, end - p);
    if (k == 0) {
      memory.copy(d, ESCAPED_FFFD, 6);
      d += 6;
      p++;
    } else if (k == 3 && c == 0xe2 && load<u8>(p, 1) == 0x80 && (load<u8>(p, 2) | 1) == 0xa9) {
      memory.copy(d, load<u8>(p, 2) == 0xa8 ? ESCAPED_2028 : ESCAPED_2029, 6);
      d += 6;
      p += 3;
    } else {
      memory.copy(d, p, <usize>k);
      d += <usize>k;
      p += <usize>k;
    }
  }
  return d;
}

/** Appends s to b as a JSON string, escaped as appendQuotedUTF8 escapes. */
export function appendQuoted(b: ByteBuf, s: string): void {
  const t = scratchQuote;
  t.reset();
  t.utf8(s);
  appendQuotedUTF8(b, t.ptr, t.len);
}

const scratchQuote = new ByteBuf(true);

/**
 * Appends v to b as a JSON number, in the shortest form that reads back the
 * same; NaN and infinities, which JSON cannot spell, become null.
 */
export function appendNumber(b: ByteBuf, v: f64): void {
  if (!isFinite(v)) {
    b.ascii("null");
    return;
  }
  if (v == Math.trunc(v) && Math.abs(v) < 1e15) {
    b.decimal(<i64>v);
    return;
  }
  b.ascii(v.toString());
}

const EMPTY_OBJECT = memory.data<u8>([0x7b, 0x7d]); // {}

// An edit of an Editor: set the key keys[kstart:kend] (UTF-8) to the value
// vals[vstart:vend], or delete it.
class Edit {
  kstart: i32 = 0;
  kend: i32 = 0;
  vstart: i32 = 0;
  vend: i32 = 0;
  del: bool = false;
  // A key may be edited more than once: its first edit stands for all, and
  // last is the index of the one that wins; later marks the others.
  last: i32 = 0;
  later: bool = false;
  used: bool = false;
}

/**
 * Editor rewrites the top-level members of a JSON object: it sets, replaces
 * and deletes members and copies the others as they are, without decoding
 * the document. It keeps its buffers, so one Editor kept in a global
 * allocates nothing per event once they have grown. It writes what Go's
 * sdk.Editor writes, byte for byte.
 *
 *     ed.reset().setString("region", r).setInt("amount_cents", c);
 *     if (!ed.apply(e.dataPtr, e.dataLen)) { ... not an object ... }
 *     out.emit(o.setJSONBytes(ed.ptr, ed.length));
 */
export class Editor {
  private edits: StaticArray<Edit> = new StaticArray<Edit>(0);
  private n: i32 = 0;
  private keys: ByteBuf = new ByteBuf();
  private vals: ByteBuf = new ByteBuf();
  private out: ByteBuf = new ByteBuf();
  private copy: ByteBuf = new ByteBuf();
  private unescaped: ByteBuf = new ByteBuf();
  private it: Members = new Members(0, 0);

  /** Forgets the edits, keeping the buffers. */
  reset(): Editor {
    this.n = 0;
    this.keys.reset();
    this.vals.reset();
    return this;
  }

  private add(key: string, vstart: i32, del: bool): Editor {
    const n = this.n;
    if (n == this.edits.length) {
      const grown = new StaticArray<Edit>(n < 4 ? 8 : n * 2);
      for (let i = 0; i < n; i++) grown[i] = this.edits[i];
      for (let i = n; i < grown.length; i++) grown[i] = new Edit();
      this.edits = grown;
    }
    const keys = this.keys;
    const kstart = keys.len;
    keys.utf8(key);
    const kend = keys.len;
    const klen = kend - kstart;
    let later = false;
    for (let i = 0; i < n; i++) {
      const e = unchecked(this.edits[i]);
      if (!e.later && e.kend - e.kstart == klen && memory.compare(keys.ptr + <usize>e.kstart, keys.ptr + <usize>kstart, <usize>klen) == 0) {
        e.last = n;
        later = true;
        break;
      }
    }
    const e = unchecked(this.edits[n]);
    e.kstart = kstart;
    e.kend = kend;
    e.vstart = vstart;
    e.vend = this.vals.len;
    e.del = del;
    e.last = n;
    e.later = later;
    e.used = false;
    this.n = n + 1;
    return this;
  }

  /** Sets key to a value given as JSON text, which must be valid JSON. */
  setRaw(key: string, json: string): Editor {
    const s = this.vals.len;
    this.vals.utf8(json);
    return this.add(key, s, false);
  }

  /** Sets key to a value given as the n bytes of JSON at p, which must be valid JSON. */
  setRawBytes(key: string, p: usize, n: i32): Editor {
    const s = this.vals.len;
    this.vals.bytes(p, n);
    return this.add(key, s, false);
  }

  /** Sets key to a string. */
  setString(key: string, v: string): Editor {
    const s = this.vals.len;
    appendQuoted(this.vals, v);
    return this.add(key, s, false);
  }

  /** Sets key to a string given as n bytes of UTF-8 at p (ASCII upper-cased with upper). */
  setStringBytes(key: string, p: usize, n: i32, upper: bool = false): Editor {
    const s = this.vals.len;
    appendQuotedUTF8(this.vals, p, <usize>n, upper);
    return this.add(key, s, false);
  }

  /** Sets key to an integer. */
  setInt(key: string, v: i64): Editor {
    const s = this.vals.len;
    this.vals.decimal(v);
    return this.add(key, s, false);
  }

  /** Sets key to a number; NaN and infinities become null. */
  setFloat(key: string, v: f64): Editor {
    const s = this.vals.len;
    appendNumber(this.vals, v);
    return this.add(key, s, false);
  }

  /** Sets key to true or false. */
  setBool(key: string, v: bool): Editor {
    const s = this.vals.len;
    this.vals.ascii(v ? "true" : "false");
    return this.add(key, s, false);
  }

  /** Sets key to null. */
  setNull(key: string): Editor {
    const s = this.vals.len;
    this.vals.ascii("null");
    return this.add(key, s, false);
  }

  /** Removes key. */
  delete(key: string): Editor {
    return this.add(key, this.vals.len, true);
  }

  /** The address of the last result. */
  @inline get ptr(): usize {
    return this.out.ptr;
  }

  /** The length of the last result. */
  @inline get length(): i32 {
    return this.out.len;
  }

  /** The last result as a string. */
  toString(): string {
    return decodeUTF8(this.out.ptr, this.out.len);
  }

  /** Writes the edits as a new object (apply to {}); the result is ptr, length. */
  build(): Editor {
    this.apply(EMPTY_OBJECT, 2);
    return this;
  }

  /**
   * Applies the edits to the JSON object of len bytes at ptr: members that
   * are set keep their place, new ones come last, in the order they were
   * set. When a key is edited more than once its last edit wins, and a new
   * key takes the place of its first. The result (ptr, length) is valid
   * until the next apply; false when the document is not an object.
   */
  apply(ptr: usize, len: i32): bool {
    const n = this.n;
    const edits = this.edits;
    for (let i = 0; i < n; i++) unchecked(edits[i]).used = false;
    const out = this.out;
    if (len > 0 && ptr < out.ptr + <usize>out.cap && out.ptr < ptr + <usize>len) {
      // editing our own last result: read it from a copy
      const c = this.copy;
      c.reset();
      c.bytes(ptr, len);
      ptr = c.ptr;
    }
    // The most it can take: the document, every value, every key escaped
    // (6 bytes a byte) and quoted, a ',' and a ':' each, and the braces.
    const keys = this.keys;
    const vals = this.vals;
    out.reset();
    let d = out.reserve(<i32>(<u64>len + <u64>vals.len + 6 * <u64>keys.len + 4 * <u64>n + 2));
    const d0 = d;
    store<u8>(d++, 0x7b);
    let first = true;
    const it = this.it.reset(ptr, len);
    const kp = keys.ptr;
    const vp0 = vals.ptr;
    while (it.next()) {
      let vp = it.valuePtr;
      let vl = it.valueLen;
      if (n > 0) {
        // the key's text: its bytes, or decoded when it has escapes
        let kb = it.keyPtr + 1;
        let kl = <usize>it.keyLen - 2;
        if (hasBackslash(kb, kl)) {
          const u = this.unescaped;
          if (unescapeInto(u, kb, kl)) {
            kb = u.ptr;
            kl = <usize>u.len;
          } else kl = <usize>0xffff_ffff; // matches no key
        }
        let drop = false;
        for (let i = 0; i < n; i++) {
          const e = unchecked(edits[i]);
          if (e.later || e.used || <usize>(e.kend - e.kstart) != kl) continue;
          if (memory.compare(kp + <usize>e.kstart, kb, kl) != 0) continue;
          e.used = true;
          const w = unchecked(edits[e.last]);
          if (w.del) drop = true;
          vp = vp0 + <usize>w.vstart;
          vl = w.vend - w.vstart;
          break;
        }
        if (drop) continue;
      }
      if (!first) store<u8>(d++, 0x2c);
      first = false;
      memory.copy(d, it.keyPtr, <usize>it.keyLen);
      d += <usize>it.keyLen;
      store<u8>(d++, 0x3a);
      memory.copy(d, vp, <usize>vl);
      d += <usize>vl;
    }
    if (!it.ok) {
      out.len = 0;
      return false;
    }
    for (let i = 0; i < n; i++) {
      const e = unchecked(edits[i]);
      if (e.later || e.used) continue;
      const w = unchecked(edits[e.last]);
      if (w.del) continue;
      if (!first) store<u8>(d++, 0x2c);
      first = false;
      store<u8>(d++, 0x22);
      d = escapeRun(d, kp + <usize>e.kstart, kp + <usize>e.kend, false);
      store<u8>(d++, 0x22);
      store<u8>(d++, 0x3a);
      memory.copy(d, vp0 + <usize>w.vstart, <usize>(w.vend - w.vstart));
      d += <usize>(w.vend - w.vstart);
    }
    store<u8>(d++, 0x7d);
    out.len = <i32>(d - d0);
    return true;
  }
}

// ---- checking a document ----

/** The deepest nesting the host's JSON check (Go's encoding/json) accepts. */
const MAX_DEPTH: i32 = 10000;
const stack = new ByteBuf(true);

function skipStringChecked(p: usize, end: usize): usize {
  // p is at '"'; returns the address after the closing quote, or 0
  p++;
  while (p < end) {
    // skip plain ASCII: not '"', '\\', a control character or a non-ASCII byte
    while (p + 8 <= end) {
      const w = load<u64>(p);
      const m = bytesEqual(w, QUOTES) | bytesEqual(w, BACKSLASHES) | bytesBelow(w, SPACES) | (w & HIGHS);
      if (m != 0) {
        p += firstByte(m);
        break;
      }
      p += 8;
    }
    if (p >= end) break;
    const c = <u32>load<u8>(p);
    if (c == 0x22) return p + 1;
    if (c < 0x20) return 0;
    if (c == 0x5c) {
      if (p + 1 >= end) return 0;
      const e = <u32>load<u8>(p, 1);
      if (e == 0x75) {
        if (p + 6 > end || hex4(p + 2) < 0) return 0;
        p += 6;
      } else if (e == 0x22 || e == 0x5c || e == 0x2f || e == 0x62 || e == 0x66 || e == 0x6e || e == 0x72 || e == 0x74) {
        p += 2;
      } else return 0;
      continue;
    }
    if (c < 0x80) {
      p++;
      continue;
    }
    const k = utf8SeqLen(p, end - p);
    if (k == 0) return 0;
    p += <usize>k;
  }
  return 0;
}

function skipNumberChecked(p: usize, end: usize): usize {
  if (p < end && load<u8>(p) == 0x2d) p++;
  if (p >= end) return 0;
  let c = <u32>load<u8>(p) - 0x30;
  if (c == 0) p++;
  else if (c <= 9) {
    while (p < end && <u32>load<u8>(p) - 0x30 <= 9) p++;
  } else return 0;
  if (p < end && load<u8>(p) == 0x2e) {
    p++;
    const s = p;
    while (p < end && <u32>load<u8>(p) - 0x30 <= 9) p++;
    if (p == s) return 0;
  }
  if (p < end && (load<u8>(p) | 0x20) == 0x65) {
    p++;
    if (p < end && (load<u8>(p) == 0x2b || load<u8>(p) == 0x2d)) p++;
    const s = p;
    while (p < end && <u32>load<u8>(p) - 0x30 <= 9) p++;
    if (p == s) return 0;
  }
  return p;
}

function literal(p: usize, end: usize, word: u32, n: usize): usize {
  // word holds the literal's first 4 bytes; "false" checks its 'e' too
  if (p + n > end || load<u32>(p) != word) return 0;
  if (n == 5 && load<u8>(p, 4) != 0x65) return 0;
  return p + n;
}

/**
 * Reports whether the len bytes at ptr are one well-formed JSON value
 * (RFC 8259) in valid UTF-8, optionally surrounded by white space, nested
 * at most 10000 deep (the host's limit).
 */
export function validJSON(ptr: usize, len: i32): bool {
  let p = ptr;
  const end = ptr + <usize>len;
  const st = stack;
  st.reset();
  p = skipSpace(p, end);
  // Each round reads a value, then what follows it.
  while (true) {
    if (p >= end) return false;
    let c = <u32>load<u8>(p);
    if (c == 0x7b || c == 0x5b) {
      if (st.len >= MAX_DEPTH) return false;
      p = skipSpace(p + 1, end);
      if (p < end && <u32>load<u8>(p) == c + 2) {
        p++; // {} or []
      } else {
        st.byte(c);
        if (c == 0x7b) {
          p = skipKey(p, end);
          if (p == 0) return false;
        }
        continue; // the first value inside
      }
    } else if (c == 0x22) {
      p = skipStringChecked(p, end);
    } else if (c == 0x74) {
      p = literal(p, end, 0x65757274, 4); // true
    } else if (c == 0x66) {
      p = literal(p, end, 0x736c6166, 5); // false
    } else if (c == 0x6e) {
      p = literal(p, end, 0x6c6c756e, 4); // null
    } else {
      p = skipNumberChecked(p, end);
    }
    if (p == 0) return false;
    // after a value: close containers, or ',' and the next value
    while (true) {
      p = skipSpace(p, end);
      if (st.len == 0) return p == end;
      if (p >= end) return false;
      const top = <u32>load<u8>(st.ptr + <usize>st.len - 1);
      c = <u32>load<u8>(p);
      if (c == top + 2) {
        st.len--;
        p++;
        continue;
      }
      if (c != 0x2c) return false;
      p = skipSpace(p + 1, end);
      if (top == 0x7b) {
        p = skipKey(p, end);
        if (p == 0) return false;
      }
      break;
    }
  }
  return false;
}

// skipKey checks an object member's key and its ':' at p, and returns where
// its value starts (white space skipped), or 0 when they are not there.
function skipKey(p: usize, end: usize): usize {
  if (p >= end || load<u8>(p) != 0x22) return 0;
  p = skipStringChecked(p, end);
  if (p == 0) return 0;
  p = skipSpace(p, end);
  if (p >= end || load<u8>(p) != 0x3a) return 0;
  return skipSpace(p + 1, end);
}
