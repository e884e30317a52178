// Logging through the host (aegis.log, ABI.md section 4), and the handlers
// that replace AssemblyScript's environment imports, which the host
// refuses: env.abort, env.trace and env.seed. Build with
//
//   --use abort=aegisAbort --use trace=aegisTrace --use seed=aegisSeed
//
// so that AssemblyScript calls these instead of importing its own.

import { writeDecimal } from "./bytes";

// @ts-ignore: decorator
@external("aegis", "log")
declare function aegis_log(level: i32, ptr: usize, len: usize): void;

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "random_get")
declare function wasi_random_get(buf: usize, len: usize): u16;

/** Log levels, those of Go's log/slog; other values are allowed. */
export enum Level {
  DEBUG = -4,
  INFO = 0,
  WARN = 4,
  ERROR = 8,
}

/** The host logs at most this many bytes of a message. */
const MAX_MESSAGE: usize = 4096;

// A static buffer, so that logging allocates nothing and works even when
// the heap does not (abort).
const buf = memory.data(<i32>MAX_MESSAGE + 8);

/**
 * Writes s as UTF-8 at d, stopping before a character that would go past
 * limit; returns the address after what it wrote. A lone surrogate becomes
 * U+FFFD.
 */
function put(d: usize, limit: usize, s: string): usize {
  const p = changetype<usize>(s);
  const n = <usize>s.length;
  for (let i: usize = 0; i < n; i++) {
    let c = <u32>load<u16>(p + (i << 1));
    let k: usize = c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
    if (c >= 0xd800 && c < 0xe000) {
      const lo = i + 1 < n ? <u32>load<u16>(p + ((i + 1) << 1)) : 0;
      if (c < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        k = 4;
      } else c = 0xfffd;
    }
    if (d + k > limit) break;
    if (k == 1) store<u8>(d, <u8>c);
    else if (k == 2) {
      store<u8>(d, <u8>(0xc0 | (c >> 6)));
      store<u8>(d, <u8>(0x80 | (c & 0x3f)), 1);
    } else if (k == 3) {
      store<u8>(d, <u8>(0xe0 | (c >> 12)));
      store<u8>(d, <u8>(0x80 | ((c >> 6) & 0x3f)), 1);
      store<u8>(d, <u8>(0x80 | (c & 0x3f)), 2);
    } else {
      store<u8>(d, <u8>(0xf0 | (c >> 18)));
      store<u8>(d, <u8>(0x80 | ((c >> 12) & 0x3f)), 1);
      store<u8>(d, <u8>(0x80 | ((c >> 6) & 0x3f)), 2);
      store<u8>(d, <u8>(0x80 | (c & 0x3f)), 3);
      i++;
    }
    d += k;
  }
  return d;
}

/**
 * Sends a message to the host's log, tagged with the plugin. The host logs
 * at most the first 4096 bytes, so the rest is not sent. Every call
 * crosses into the host: do not log once per event on the hot path.
 */
export function log(level: i32, message: string): void {
  const end = put(buf, buf + MAX_MESSAGE, message);
  aegis_log(level, buf, end - buf);
}

/** Logs at debug level. */
export function logDebug(message: string): void {
  log(Level.DEBUG, message);
}

/** Logs at info level. */
export function logInfo(message: string): void {
  log(Level.INFO, message);
}

/** Logs at warn level. */
export function logWarn(message: string): void {
  log(Level.WARN, message);
}

/** Logs at error level. */
export function logError(message: string): void {
  log(Level.ERROR, message);
}

/**
 * The abort handler (--use abort=aegisAbort): AssemblyScript calls it on a
 * failed assert, an out-of-range index, a failed allocation... It logs the
 * message and where it happened at error level, then traps, which makes
 * the host discard the instance and fail the call (ABI.md section 13).
 */
// @ts-ignore: decorator
@global export function aegisAbort(message: string | null = null, fileName: string | null = null, line: u32 = 0, column: u32 = 0): void {
  const limit = buf + MAX_MESSAGE;
  let d = put(buf, limit, "abort: ");
  d = put(d, limit, message ? message : "(no message)");
  if (fileName) {
    d = put(d, limit, " at ");
    d = put(d, limit, fileName);
    if (d + 24 <= limit) {
      store<u8>(d++, 0x3a);
      d = writeDecimal(d, line);
      store<u8>(d++, 0x3a);
      d = writeDecimal(d, column);
    }
  }
  aegis_log(Level.ERROR, buf, d - buf);
  unreachable();
}

/**
 * The trace handler (--use trace=aegisTrace): trace("msg", n, a0, ...) logs
 * the message and its n numbers at debug level.
 */
// @ts-ignore: decorator
@global export function aegisTrace(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {
  let s = "trace: " + message;
  if (n > 0) s += " " + a0.toString();
  if (n > 1) s += ", " + a1.toString();
  if (n > 2) s += ", " + a2.toString();
  if (n > 3) s += ", " + a3.toString();
  if (n > 4) s += ", " + a4.toString();
  log(Level.DEBUG, s);
}

/**
 * The seed handler (--use seed=aegisSeed) that Math.random seeds itself
 * with, from WASI random_get. Without a grant in the manifest the host's
 * random numbers are a fixed sequence (ABI.md section 14).
 */
// @ts-ignore: decorator
@global export function aegisSeed(): f64 {
  const p = buf; // 8 bytes, only for this call
  if (wasi_random_get(p, 8) != 0) return 1;
  return <f64>(load<u64>(p) >>> 11); // an integer below 2^53: never NaN
}
