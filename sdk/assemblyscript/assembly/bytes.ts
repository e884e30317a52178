// Byte buffers and UTF-8: the SDK's own memory, and text as the ABI spells
// it (UTF-8), next to AssemblyScript's strings (UTF-16).

/** The largest buffer the SDK makes: AssemblyScript's largest object. */
export const MAX_BUFFER: i32 = 0x3fff_ff00;

/**
 * A growable byte buffer. By default it lives in garbage-collected memory
 * (an ArrayBuffer, which never moves), so that a buffer the plugin drops is
 * collected with it. The SDK's own buffers, which live as long as the
 * instance, are raw (heap.alloc): growing one frees the old bytes at once,
 * which matters when memory is tight. Growing moves the bytes, so an
 * address into the buffer is valid only until it grows. The SDK reuses its
 * buffers from call to call.
 */
export class ByteBuf {
  /** The address of the first byte (0 before the first byte is reserved). */
  ptr: usize = 0;
  /** The length in bytes. */
  len: i32 = 0;
  /** The capacity in bytes. */
  cap: i32 = 0;
  private owner: ArrayBuffer | null = null;

  constructor(private raw: bool = false) {}

  /** The address after the last byte. */
  @inline get end(): usize {
    return this.ptr + <usize>this.len;
  }

  @inline reset(): void {
    this.len = 0;
  }

  /**
   * Makes room for n more bytes and returns the address where they go;
   * the caller writes them and then adds n to len.
   */
  @inline reserve(n: i32): usize {
    const need = <u64>this.len + <u64><u32>n;
    if (need > <u64><u32>this.cap) this.grow(need);
    return this.ptr + <usize>this.len;
  }

  private grow(need: u64): void {
    if (need > <u64>MAX_BUFFER) abort("aegis sdk: buffer larger than 1 GiB");
    let c = <u64>this.cap << 1;
    if (c < need) c = need;
    if (c < 256) c = 256;
    if (c > <u64>MAX_BUFFER) c = <u64>MAX_BUFFER;
    if (this.raw) {
      this.ptr = this.ptr == 0 ? heap.alloc(<usize>c) : heap.realloc(this.ptr, <usize>c);
    } else {
      const nb = new ArrayBuffer(<i32>c);
      memory.copy(changetype<usize>(nb), this.ptr, <usize>this.len);
      this.owner = nb;
      this.ptr = changetype<usize>(nb);
    }
    this.cap = <i32>c;
  }

  @inline byte(b: u32): void {
    const p = this.reserve(1);
    store<u8>(p, <u8>b);
    this.len += 1;
  }

  @inline u32(v: u32): void {
    const p = this.reserve(4);
    store<u32>(p, v);
    this.len += 4;
  }

  @inline u64(v: u64): void {
    const p = this.reserve(8);
    store<u64>(p, v);
    this.len += 8;
  }

  /** Appends the n bytes at p. */
  @inline bytes(p: usize, n: i32): void {
    const d = this.reserve(n);
    memory.copy(d, p, <usize>n);
    this.len += n;
  }

  /** Appends an ASCII string (every code unit below 0x80). */
  ascii(s: string): void {
    const n = s.length;
    const d = this.reserve(n);
    const src = changetype<usize>(s);
    for (let i = 0; i < n; i++) store<u8>(d + <usize>i, <u8>load<u16>(src + (<usize>i << 1)));
    this.len += n;
  }

  /** Appends s encoded as UTF-8 (a lone surrogate becomes U+FFFD). */
  utf8(s: string): void {
    const d = this.reserve(utf8Length(s));
    this.len += <i32>(encodeUTF8(s, d) - d);
  }

  /** Appends v in decimal. */
  decimal(v: i64): void {
    const d = this.reserve(20);
    this.len += <i32>(writeDecimal(d, v) - d);
  }
}

// Eight bytes at a time: in a little-endian u64 loaded from memory, byte i
// is the byte at address p+i. Each mask below is non-zero exactly when some
// byte matches, and its lowest set bit is in the first byte that matches
// (the bits above it may be false positives), so firstByte finds it.

export const ONES: u64 = 0x0101_0101_0101_0101;
export const HIGHS: u64 = 0x8080_8080_8080_8080;

/** Bytes that are zero. */
@inline export function zeroBytes(w: u64): u64 {
  return (w - ONES) & ~w & HIGHS;
}

/** Bytes equal to b (given as b * ONES). */
@inline export function bytesEqual(w: u64, bs: u64): u64 {
  return zeroBytes(w ^ bs);
}

/** Bytes below n (n <= 0x80; given as n * ONES). */
@inline export function bytesBelow(w: u64, ns: u64): u64 {
  return (w - ns) & ~w & HIGHS;
}

/** The index (0 to 7) of the first byte a non-zero mask marks. */
@inline export function firstByte(mask: u64): usize {
  return <usize>(ctz(mask) >> 3);
}

/** Writes v in decimal at d and returns the address after it. */
export function writeDecimal(d: usize, v: i64): usize {
  let u = <u64>v;
  if (v < 0) {
    store<u8>(d, 0x2d);
    d++;
    u = 0 - u; // -2^63 too: unsigned from here
  }
  let n = 1;
  for (let t = u; t >= 10; t /= 10) n++;
  let q = d + <usize>n;
  do {
    q--;
    store<u8>(q, <u8>(0x30 + <u32>(u % 10)));
    u /= 10;
  } while (u != 0);
  return d + <usize>n;
}

/** The length of s in UTF-8, a lone surrogate counting as U+FFFD. */
export function utf8Length(s: string): i32 {
  const p = changetype<usize>(s);
  const n = s.length;
  let len = 0;
  for (let i = 0; i < n; i++) {
    const c = <u32>load<u16>(p + (<usize>i << 1));
    if (c < 0x80) len += 1;
    else if (c < 0x800) len += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < n && isLowSurrogate(load<u16>(p + (<usize>(i + 1) << 1)))) {
      len += 4;
      i++;
    } else len += 3;
  }
  return len;
}

@inline function isLowSurrogate(c: u32): bool {
  return c >= 0xdc00 && c < 0xe000;
}

/** Writes s as UTF-8 at d (utf8Length(s) bytes) and returns the address after it. */
export function encodeUTF8(s: string, d: usize): usize {
  const p = changetype<usize>(s);
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = <u32>load<u16>(p + (<usize>i << 1));
    if (c < 0x80) {
      store<u8>(d++, <u8>c);
      continue;
    }
    if (c < 0x800) {
      store<u8>(d++, <u8>(0xc0 | (c >> 6)));
      store<u8>(d++, <u8>(0x80 | (c & 0x3f)));
      continue;
    }
    if (c >= 0xd800 && c < 0xe000) {
      if (c < 0xdc00 && i + 1 < n) {
        const lo = <u32>load<u16>(p + (<usize>(i + 1) << 1));
        if (isLowSurrogate(lo)) {
          c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          store<u8>(d++, <u8>(0xf0 | (c >> 18)));
          store<u8>(d++, <u8>(0x80 | ((c >> 12) & 0x3f)));
          store<u8>(d++, <u8>(0x80 | ((c >> 6) & 0x3f)));
          store<u8>(d++, <u8>(0x80 | (c & 0x3f)));
          i++;
          continue;
        }
      }
      c = 0xfffd;
    }
    store<u8>(d++, <u8>(0xe0 | (c >> 12)));
    store<u8>(d++, <u8>(0x80 | ((c >> 6) & 0x3f)));
    store<u8>(d++, <u8>(0x80 | (c & 0x3f)));
  }
  return d;
}

/**
 * The length of the well-formed UTF-8 sequence at p (n bytes available),
 * 1 to 4, or 0 when the bytes there are not one (an invalid byte, a
 * truncated sequence, an overlong form, a surrogate, beyond U+10FFFF).
 */
export function utf8SeqLen(p: usize, n: usize): i32 {
  const c = <u32>load<u8>(p);
  if (c < 0x80) return 1;
  if (c < 0xc2) return 0;
  if (c < 0xe0) {
    if (n < 2 || (<u32>load<u8>(p, 1) & 0xc0) != 0x80) return 0;
    return 2;
  }
  if (c < 0xf0) {
    if (n < 3) return 0;
    const c1 = <u32>load<u8>(p, 1);
    let lo: u32 = 0x80, hi: u32 = 0xbf;
    if (c == 0xe0) lo = 0xa0;
    else if (c == 0xed) hi = 0x9f;
    if (c1 < lo || c1 > hi || (<u32>load<u8>(p, 2) & 0xc0) != 0x80) return 0;
    return 3;
  }
  if (c < 0xf5) {
    if (n < 4) return 0;
    const c1 = <u32>load<u8>(p, 1);
    let lo: u32 = 0x80, hi: u32 = 0xbf;
    if (c == 0xf0) lo = 0x90;
    else if (c == 0xf4) hi = 0x8f;
    if (c1 < lo || c1 > hi || (<u32>load<u8>(p, 2) & 0xc0) != 0x80 || (<u32>load<u8>(p, 3) & 0xc0) != 0x80) return 0;
    return 4;
  }
  return 0;
}

/** Reports whether the n bytes at p are valid UTF-8. */
export function validUTF8(p: usize, n: usize): bool {
  const end = p + n;
  while (p < end) {
    // ASCII 8 bytes at a time
    while (p + 8 <= end && (load<u64>(p) & 0x8080_8080_8080_8080) == 0) p += 8;
    if (p >= end) break;
    if (<u32>load<u8>(p) < 0x80) {
      p++;
      continue;
    }
    const k = utf8SeqLen(p, end - p);
    if (k == 0) return false;
    p += <usize>k;
  }
  return true;
}

/**
 * Reports whether the n bytes at p spell s in UTF-8, without allocating.
 * A lone surrogate in s matches nothing.
 */
export function utf8Equals(p: usize, n: usize, s: string): bool {
  const sp = changetype<usize>(s);
  const sn = <usize>s.length;
  if (n < sn || n > sn * 3) return false; // each code unit is 1 to 3 bytes
  let j: usize = 0;
  for (let i: usize = 0; i < sn; i++) {
    let c = <u32>load<u16>(sp + (i << 1));
    if (c < 0x80) {
      if (j >= n || <u32>load<u8>(p + j) != c) return false;
      j++;
      continue;
    }
    // encode c to UTF-8 in w (up to 4 bytes, first byte lowest) and its length
    let w: u32, k: usize;
    if (c < 0x800) {
      w = (0xc0 | (c >> 6)) | ((0x80 | (c & 0x3f)) << 8);
      k = 2;
    } else if (c >= 0xd800 && c < 0xe000) {
      if (c >= 0xdc00 || i + 1 >= sn) return false;
      const lo = <u32>load<u16>(sp + ((i + 1) << 1));
      if (!isLowSurrogate(lo)) return false;
      c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
      w = (0xf0 | (c >> 18)) | ((0x80 | ((c >> 12) & 0x3f)) << 8) | ((0x80 | ((c >> 6) & 0x3f)) << 16) | ((0x80 | (c & 0x3f)) << 24);
      k = 4;
      i++;
    } else {
      w = (0xe0 | (c >> 12)) | ((0x80 | ((c >> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
      k = 3;
    }
    if (j + k > n) return false;
    for (let b: usize = 0; b < k; b++) {
      if (<u32>load<u8>(p + j + b) != ((w >> (<u32>b << 3)) & 0xff)) return false;
    }
    j += k;
  }
  return j == n;
}

/**
 * Decodes the n bytes of UTF-8 at p into a string; an invalid byte becomes
 * U+FFFD.
 */
export function decodeUTF8(p: usize, n: usize): string {
  if (validUTF8(p, n)) return String.UTF8.decodeUnsafe(p, n);
  const b = new ByteBuf();
  const end = p + n;
  while (p < end) {
    const k = utf8SeqLen(p, end - p);
    if (k == 0) {
      b.bytes(REPLACEMENT, 3);
      p++;
    } else {
      b.bytes(p, k);
      p += <usize>k;
    }
  }
  return String.UTF8.decodeUnsafe(b.ptr, b.len);
}

const REPLACEMENT = memory.data<u8>([0xef, 0xbf, 0xbd]);
