// JSON numbers, read from their UTF-8 text as Go's strconv reads them:
// ParseFloat's correctly rounded float64 (round half to even), and
// ParseInt's int64 with overflow checking. The grammar is RFC 8259's:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?

/** False after parseI64 failed, or parseF64 found no number (or one too large for f64). */
export let numberOK: bool = false;

// Exact powers of ten for the fast path.
const POW10: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
const POW10_U64: StaticArray<u64> = [
  1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
  10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000,
  1000000000000000,
];

const TWO53: u64 = 1 << 53;

@inline function digitAt(p: usize, i: usize): u32 {
  return <u32>load<u8>(p + i) - 0x30;
}

/**
 * Parses the n bytes at p as a JSON number and returns it as float64,
 * correctly rounded. Sets numberOK; on failure (not a number, or a
 * magnitude that rounds beyond the largest float64, where Go's ParseFloat
 * reports a range error) it returns NaN. Underflow gives 0, as in Go.
 */
export function parseF64(p: usize, n: usize): f64 {
  numberOK = false;
  let i: usize = 0;
  let neg = false;
  if (n == 0) return NaN;
  if (load<u8>(p) == 0x2d) {
    neg = true;
    i = 1;
  }
  if (i >= n) return NaN;
  // Significant digits: the first 19 in m, the rest only noted.
  let m: u64 = 0;
  let kept = 0;
  let sig = false;
  let trunc = false;
  let exp10: i64 = 0;
  let d = digitAt(p, i);
  if (d == 0) {
    i++;
  } else if (d <= 9) {
    for (; i < n; i++) {
      d = digitAt(p, i);
      if (d > 9) break;
      sig = true;
      if (kept < 19) {
        m = m * 10 + <u64>d;
        kept++;
      } else {
        exp10++;
        if (d != 0) trunc = true;
      }
    }
  } else return NaN;
  if (i < n && load<u8>(p + i) == 0x2e) {
    i++;
    const start = i;
    for (; i < n; i++) {
      d = digitAt(p, i);
      if (d > 9) break;
      if (!sig && d == 0) {
        exp10--;
        continue;
      }
      sig = true;
      if (kept < 19) {
        m = m * 10 + <u64>d;
        kept++;
        exp10--;
      } else if (d != 0) trunc = true;
    }
    if (i == start) return NaN;
  }
  let e: i64 = 0;
  if (i < n && (load<u8>(p + i) | 0x20) == 0x65) {
    i++;
    let eneg = false;
    if (i < n && (load<u8>(p + i) == 0x2d || load<u8>(p + i) == 0x2b)) {
      eneg = load<u8>(p + i) == 0x2d;
      i++;
    }
    const start = i;
    for (; i < n; i++) {
      d = digitAt(p, i);
      if (d > 9) break;
      if (e < 100_000_000) e = e * 10 + <i64>d;
    }
    if (i == start) return NaN;
    if (eneg) e = -e;
  }
  if (i != n) return NaN;
  numberOK = true;
  if (m == 0) return neg ? -0.0 : 0.0;
  exp10 += e;

  if (!trunc) {
    let f: f64 = 0;
    let fast = true;
    if (exp10 == 0) {
      f = <f64>m; // one rounding, to nearest even
    } else if (m <= TWO53 && exp10 > 0 && exp10 <= 22) {
      f = <f64>m * POW10[<i32>exp10];
    } else if (m <= TWO53 && exp10 < 0 && exp10 >= -22) {
      f = <f64>m / POW10[<i32>-exp10];
    } else if (m <= TWO53 && exp10 > 22 && exp10 <= 22 + 15 && m <= TWO53 / POW10_U64[<i32>exp10 - 22]) {
      // m * 10^(exp10-22) is still an exact integer
      f = <f64>(m * POW10_U64[<i32>exp10 - 22]) * 1e22;
    } else fast = false;
    if (fast) return neg ? -f : f;
  }
  const f = slowParse(p, n);
  if (!numberOK) return NaN;
  return neg ? -f : f;
}

/**
 * Parses the n bytes at p as a JSON number that is an integer within
 * int64 (no fraction, no exponent), as Go's strconv.ParseInt(s, 10, 64)
 * does for JSON numbers. Sets numberOK; returns 0 on failure.
 */
export function parseI64(p: usize, n: usize): i64 {
  numberOK = false;
  let i: usize = 0;
  let neg = false;
  if (n == 0) return 0;
  if (load<u8>(p) == 0x2d) {
    neg = true;
    i = 1;
  }
  if (i >= n) return 0;
  if (load<u8>(p + i) == 0x30) {
    if (i + 1 != n) return 0;
    numberOK = true;
    return 0;
  }
  const limit: u64 = neg ? 0x8000_0000_0000_0000 : 0x7fff_ffff_ffff_ffff;
  let v: u64 = 0;
  for (; i < n; i++) {
    const d = digitAt(p, i);
    if (d > 9) return 0;
    if (v > (limit - <u64>d) / 10) return 0; // v*10+d > limit
    v = v * 10 + <u64>d;
  }
  numberOK = true;
  return neg ? <i64>(0 - v) : <i64>v;
}

// The slow path: the exact decimal value, shifted by powers of two until it
// is in [1/2, 1), then rounded to 53 bits. The digits are kept as a decimal
// fraction 0.d0 d1 d2 ... times 10^dp, at most MAX_DIGITS of them; the
// digits beyond are only noted as non-zero (dtrunc), which is all that
// correct rounding needs of them.

const MAX_DIGITS: i32 = 800;
const digits = memory.data(MAX_DIGITS + 32);
const scratch = memory.data(MAX_DIGITS + 32);
let nd: i32 = 0;
let dp: i32 = 0;
let dtrunc = false;

// For k decimal digits, the largest shift n with 2^n <= 10^k (k <= 18).
const MAXSHIFT: StaticArray<u8> = [0, 3, 6, 9, 13, 16, 19, 23, 26, 29, 33, 36, 39, 43, 46, 49, 53, 56, 59];

function slowParse(p: usize, n: usize): f64 {
  // Read the digits again, all of them this time.
  nd = 0;
  dp = 0;
  dtrunc = false;
  let i: usize = 0;
  if (load<u8>(p) == 0x2d) i = 1;
  let sig = false;
  let point = false;
  for (; i < n; i++) {
    const c = <u32>load<u8>(p + i);
    if (c == 0x2e) {
      point = true;
      continue;
    }
    const d = c - 0x30;
    if (d > 9) break;
    if (!sig && d == 0) {
      if (point) dp--;
      continue;
    }
    sig = true;
    if (!point) dp++;
    if (nd < MAX_DIGITS) {
      store<u8>(digits + <usize>nd, <u8>d);
      nd++;
    } else if (d != 0) dtrunc = true;
  }
  if (i < n) {
    // the exponent, checked by parseF64
    i++;
    let eneg = false;
    const c = load<u8>(p + i);
    if (c == 0x2d || c == 0x2b) {
      eneg = c == 0x2d;
      i++;
    }
    let e: i32 = 0;
    for (; i < n; i++) {
      if (e < 100_000_000) e = e * 10 + <i32>digitAt(p, i);
    }
    if (eneg) e = -e;
    // dp stays far from overflow: beyond these the value is 0 or infinite
    if (e > 100_000) e = 100_000;
    if (e < -100_000) e = -100_000;
    dp += e;
  }
  trimZeros();
  if (nd == 0) return 0;
  if (dp > 310) {
    numberOK = false; // beyond 1e309: infinite
    return Infinity;
  }
  if (dp < -330) return 0; // below 1e-330: rounds to 0

  // Scale into [1/2, 1): value = 0.digits * 10^dp = v * 2^exp2.
  let exp2: i32 = 0;
  while (dp > 0) {
    const s: i32 = dp >= MAXSHIFT.length ? 60 : <i32>MAXSHIFT[dp];
    shiftRight(s);
    exp2 += s;
  }
  while (dp < 0 || (dp == 0 && load<u8>(digits) < 5)) {
    let s: i32;
    if (dp == 0) s = 1;
    else s = -dp >= MAXSHIFT.length ? 60 : <i32>MAXSHIFT[-dp];
    shiftLeft(s);
    exp2 -= s;
  }
  // v in [1/2, 1): x = (2v) * 2^E with 2v in [1, 2).
  let E = exp2 - 1;
  let bits: i32 = 53;
  if (E < -1022) {
    // subnormal: fewer bits of mantissa, x = m * 2^-1074
    bits = E + 1075;
    E = -1022;
    if (bits < 0) return 0; // below half the smallest subnormal
  }
  if (E > 1023) {
    numberOK = false;
    return Infinity;
  }
  shiftLeft(bits);
  let mant = roundedInteger();
  if (mant >= TWO53) {
    // rounding carried into a new bit
    mant >>= 1;
    E++;
    if (E > 1023) {
      numberOK = false;
      return Infinity;
    }
  }
  let b: u64;
  if (mant < (<u64>1 << 52)) b = mant; // subnormal (E is -1022)
  else b = (<u64>(E + 1023) << 52) | (mant & ((<u64>1 << 52) - 1));
  return reinterpret<f64>(b);
}

function trimZeros(): void {
  while (nd > 0 && load<u8>(digits + <usize>nd - 1) == 0) nd--;
  if (nd == 0) dp = 0;
}

/** Divides the decimal by 2^k, 1 <= k <= 60. */
function shiftRight(k: i32): void {
  let r: i32 = 0;
  let w: i32 = 0;
  let acc: u64 = 0;
  // read digits until acc >> k is non-zero
  for (; (acc >> <u64>k) == 0; r++) {
    if (r < nd) acc = acc * 10 + <u64>load<u8>(digits + <usize>r);
    else {
      if (acc == 0) {
        nd = 0;
        dp = 0;
        return;
      }
      acc *= 10;
    }
  }
  dp -= r - 1;
  const mask: u64 = (<u64>1 << <u64>k) - 1;
  for (; r < nd; r++) {
    const out = acc >> <u64>k;
    acc = (acc & mask) * 10 + <u64>load<u8>(digits + <usize>r);
    store<u8>(digits + <usize>w, <u8>out);
    w++;
  }
  while (acc != 0) {
    const out = acc >> <u64>k;
    acc = (acc & mask) * 10;
    if (w < MAX_DIGITS) {
      store<u8>(digits + <usize>w, <u8>out);
      w++;
    } else if (out != 0) dtrunc = true;
  }
  nd = w;
  trimZeros();
}

/** Multiplies the decimal by 2^k, 0 <= k <= 60. */
function shiftLeft(k: i32): void {
  if (k == 0 || nd == 0) return;
  // From the last digit up, into scratch from its end.
  let w: i32 = nd + 20; // a carry below 2^60 has at most 19 digits
  let carry: u64 = 0;
  for (let r = nd - 1; r >= 0; r--) {
    const acc = (<u64>load<u8>(digits + <usize>r) << <u64>k) + carry;
    w--;
    store<u8>(scratch + <usize>w, <u8>(acc % 10));
    carry = acc / 10;
  }
  while (carry != 0) {
    w--;
    store<u8>(scratch + <usize>w, <u8>(carry % 10));
    carry /= 10;
  }
  const total = nd + 20 - w; // digits of the product
  dp += total - nd;
  let keep = total;
  if (keep > MAX_DIGITS) {
    for (let j = MAX_DIGITS; j < total; j++) {
      if (load<u8>(scratch + <usize>(w + j)) != 0) dtrunc = true;
    }
    keep = MAX_DIGITS;
  }
  memory.copy(digits, scratch + <usize>w, <usize>keep);
  nd = keep;
  trimZeros();
}

/** The decimal's integer part, rounded to nearest, ties to even. */
function roundedInteger(): u64 {
  if (dp > 20) return 0xffff_ffff_ffff_ffff; // cannot happen below 2^53
  let v: u64 = 0;
  let i = 0;
  for (; i < dp && i < nd; i++) v = v * 10 + <u64>load<u8>(digits + <usize>i);
  for (; i < dp; i++) v *= 10;
  if (dp >= 0 && dp < nd) {
    const d = load<u8>(digits + <usize>dp);
    let up = false;
    if (d > 5) up = true;
    else if (d == 5) {
      // exactly half only when nothing follows
      if (dp + 1 < nd || dtrunc) up = true;
      else up = (v & 1) == 1;
    }
    if (up) v++;
  }
  return v;
}
