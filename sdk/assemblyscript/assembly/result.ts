// The result of a call (ABI.md section 9), built in buffers reused from
// call to call, and the state of the call in progress: which event the
// plugin's code is looking at, and whether it failed that event or the
// whole call.

import { ByteBuf, utf8Length, encodeUTF8, validUTF8, utf8SeqLen } from "./bytes";
import { DataKind, OutEvent } from "./event";
import { validJSON } from "./json";

/** Result status codes (ABI.md section 11). */
export enum Status {
  OK = 0,
  BAD_INPUT = 1,
  BAD_CONFIG = 2,
  FAILED = 3,
  UNSUPPORTED = 4,
}

/** What the call in progress is; it decides what failEvent and failCall do. */
export enum CallKind {
  NONE = 0,
  INIT = 1,
  FILTER = 2,
  MAP = 3,
  AGGREGATE = 4,
  MERGE = 5,
  FINISH = 6,
}

// The result: header, body, then the event errors (collected apart, since
// the body grows while events fail).
export const body = new ByteBuf(true);
const errs = new ByteBuf(true);
export let count: u32 = 0;
let nerrs: u32 = 0;

// The call in progress.
export let callKind = CallKind.NONE;
let eventIndex: u32 = 0; // position of the current event
export let eventFailed = false;
let eventBodyStart: i32 = 0; // body length and count when the current event started
let eventCountStart: u32 = 0;
export let callFailed = false;
let callStatus = Status.OK;
let callMessage = "";

/** Starts a call: an empty result. */
export function beginCall(kind: CallKind): void {
  callKind = kind;
  body.reset();
  body.reserve(12);
  body.len = 12;
  errs.reset();
  count = 0;
  nerrs = 0;
  eventFailed = false;
  callFailed = false;
  callMessage = "";
}

/** Starts the event at position index. */
export function beginEvent(index: u32): void {
  eventIndex = index;
  eventFailed = false;
  eventBodyStart = body.len;
  eventCountStart = count;
}

/** Adds n items (indices, records or bytes) to the body's count. */
export function added(n: u32): void {
  count += n;
}

/** Finishes a successful result and returns its region, packed. */
export function finishCall(): u64 {
  callKind = CallKind.NONE;
  if (callFailed) return failResult(callStatus, callMessage);
  const p = body.ptr;
  store<u32>(p, 0);
  store<u32>(p, count, 4);
  store<u32>(p, nerrs, 8);
  if (errs.len > 0) body.bytes(errs.ptr, errs.len);
  return pack(body.ptr, body.len);
}

/** Returns a result that fails the whole call with a status and a message. */
export function failResult(status: Status, message: string): u64 {
  callKind = CallKind.NONE;
  body.reset();
  const n = utf8Length(message);
  const p = body.reserve(12 + n);
  store<u32>(p, <u32>status);
  store<u32>(p, <u32>n, 4);
  store<u32>(p, 0, 8);
  encodeUTF8(message, p + 12);
  body.len = 12 + n;
  return pack(body.ptr, body.len);
}

/** ptr << 32 | len, as every step export returns its result. */
@inline export function pack(ptr: usize, len: i32): u64 {
  return (<u64>ptr << 32) | <u64><u32>len;
}

/**
 * Fails the event the plugin's code is looking at (in a filter, map or
 * aggregate callback) with a code of the plugin's choosing and a message:
 * the host sends it to the step's error policy, and the other events go
 * on. A map's records for a failed event are dropped, and so is what it
 * emits after; a filter's answer for it does not count; an aggregate's
 * state is put back as it was before the event. Only the first failure of
 * an event counts. Called outside an event callback (configuration, merge,
 * finish) it fails the whole call, as failCall does.
 */
export function failEvent(message: string, code: u32 = 1): void {
  const k = callKind;
  if (k != CallKind.FILTER && k != CallKind.MAP && k != CallKind.AGGREGATE) {
    failCall(message);
    return;
  }
  if (eventFailed) return;
  eventFailed = true;
  if (k == CallKind.MAP) {
    // the host would discard them anyway
    body.len = eventBodyStart;
    count = eventCountStart;
  }
  const n = utf8Length(message);
  const p = errs.reserve(12 + n);
  store<u32>(p, eventIndex);
  store<u32>(p, code, 4);
  store<u32>(p, <u32>n, 8);
  encodeUTF8(message, p + 12);
  errs.len += 12 + n;
  nerrs++;
}

/**
 * Fails the whole call with a message: no event of the batch is processed,
 * and the host sends them all to the step's error policy. The SDK stops
 * calling the plugin for the rest of the batch. In the configuration
 * callback it refuses the configuration (status 2, bad config); elsewhere
 * the status is 3 (failed).
 */
export function failCall(message: string): void {
  if (callFailed) return;
  callFailed = true;
  callStatus = callKind == CallKind.INIT ? Status.BAD_CONFIG : Status.FAILED;
  callMessage = message;
}

/**
 * Output collects the events a map or an aggregate's finish emits. A map
 * may emit any number of events per input event, none included.
 */
export class Output {
  /**
   * Adds an output event; its bytes are copied at once, so o and what it
   * points to may be reused after. An event the host would refuse (a type
   * that is empty, longer than 255 bytes or has white space or control
   * characters; text that is not UTF-8; data that does not fit its kind,
   * JSON that is not well formed) is not emitted: it fails the input event
   * it came from (map) or the call (finish), with the reason, and emit
   * returns false.
   */
  emit(o: OutEvent): bool {
    const k = callKind;
    if (k != CallKind.MAP && k != CallKind.FINISH) abort("aegis sdk: Output.emit outside a map or finish");
    if (callFailed || eventFailed) return false;
    const why = checkOut(o);
    if (why != null) {
      failEvent(why);
      return false;
    }
    const size = <u64>48 + <u64>o.typeLen + <u64>o.sourceLen + <u64>o.dataLen + <u64>o.metaLen;
    if (size > 0xffff_ffff) {
      failEvent("output event larger than 4 GiB");
      return false;
    }
    const p = body.reserve(<i32>size);
    store<u32>(p, <u32>size);
    store<u32>(p, k == CallKind.MAP ? eventIndex : 0, 4);
    store<u64>(p, o.idLo, 8);
    store<u64>(p, o.idHi, 16);
    store<i64>(p, o.time, 24);
    store<u8>(p, <u8>o.kind, 32);
    store<u8>(p, 0, 33);
    store<u16>(p, <u16>o.metaCount, 34);
    store<u32>(p, <u32>o.typeLen, 36);
    store<u32>(p, <u32>o.sourceLen, 40);
    store<u32>(p, <u32>o.dataLen, 44);
    let q = p + 48;
    memory.copy(q, o.typePtr, <usize>o.typeLen);
    q += <usize>o.typeLen;
    memory.copy(q, o.sourcePtr, <usize>o.sourceLen);
    q += <usize>o.sourceLen;
    memory.copy(q, o.dataPtr, <usize>o.dataLen);
    q += <usize>o.dataLen;
    memory.copy(q, o.metaPtr, <usize>o.metaLen);
    body.len += <i32>size;
    count++;
    return true;
  }
}

/** The Output the SDK passes to map and finish callbacks. */
export const output = new Output();

// Go's unicode.IsSpace and unicode.IsControl, which the host applies to
// event types: C0, DEL and C1 controls, and the White_Space characters.
function isSpaceOrControl(r: u32): bool {
  if (r <= 0x20 || (r >= 0x7f && r <= 0xa0)) return true;
  if (r < 0x1680) return false;
  return r == 0x1680 || (r >= 0x2000 && r <= 0x200a) || r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000;
}

function badType(p: usize, n: i32): string | null {
  if (n == 0 || n > 255) return "output event type must be 1 to 255 bytes";
  const end = p + <usize>n;
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c < 0x80) {
      if (c <= 0x20 || c == 0x7f) return "output event type contains white space or a control character";
      p++;
      continue;
    }
    const k = utf8SeqLen(p, end - p);
    if (k == 0) return "output event type is not valid UTF-8";
    let r: u32;
    if (k == 2) r = ((c & 0x1f) << 6) | (<u32>load<u8>(p, 1) & 0x3f);
    else if (k == 3) r = ((c & 0x0f) << 12) | ((<u32>load<u8>(p, 1) & 0x3f) << 6) | (<u32>load<u8>(p, 2) & 0x3f);
    else r = 0x10000;
    if (isSpaceOrControl(r)) return "output event type contains white space or a control character";
    p += <usize>k;
  }
  return null;
}

/** Why the host would refuse o, or null. */
function checkOut(o: OutEvent): string | null {
  const t = badType(o.typePtr, o.typeLen);
  if (t != null) return t;
  if (!validUTF8(o.sourcePtr, <usize>o.sourceLen)) return "output event source is not valid UTF-8";
  const d = o.dataPtr;
  const n = o.dataLen;
  switch (o.kind) {
    case DataKind.NULL:
      if (n != 0) return "output event data: null with bytes";
      break;
    case DataKind.BOOL:
      if (n != 1 || load<u8>(d) > 1) return "output event data: a bool is one byte, 0 or 1";
      break;
    case DataKind.INT:
    case DataKind.FLOAT:
      if (n != 8) return "output event data: a number is 8 bytes";
      break;
    case DataKind.STRING:
      if (!validUTF8(d, <usize>n)) return "output event data: string is not valid UTF-8";
      break;
    case DataKind.BYTES:
      break;
    case DataKind.JSON:
      if (!validJSON(d, n)) return "output event data: not one well-formed JSON value in UTF-8";
      break;
    default:
      return "output event data: unknown kind";
  }
  if (o.metaCount < 0 || o.metaCount > 0xffff) return "output event has more than 65535 metadata entries";
  // entries: non-empty unique keys, UTF-8 keys and values, exactly metaCount of them
  let p = o.metaPtr;
  const end = p + <usize>o.metaLen;
  let entries = 0;
  while (p < end) {
    if (end - p < 8) return "output event metadata is malformed";
    const kl = <usize>load<u32>(p);
    const vl = <usize>load<u32>(p, 4);
    if (<u64>kl + <u64>vl + 8 > <u64>(end - p)) return "output event metadata is malformed";
    if (kl == 0 || !validUTF8(p + 8, kl) || !validUTF8(p + 8 + kl, vl)) {
      return "output event metadata: keys must be non-empty, keys and values UTF-8";
    }
    p += 8 + kl + vl;
    entries++;
  }
  if (entries != o.metaCount) return "output event metadata count does not match its entries";
  return null;
}
