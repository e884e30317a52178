// Registration of a plugin's steps, and the bodies of the ABI exports:
// each takes the input region and returns the result region, packed.

import { ByteBuf, MAX_BUFFER, decodeUTF8 } from "./bytes";
import { Event } from "./event";
import { JSONValue, Members, lookup } from "./json";
import {
  CallKind, Status, Output, output, body, added, beginCall, beginEvent, finishCall, failResult, eventFailed, callFailed,
} from "./result";

/** The ABI version this SDK implements, major << 16 | minor: 1.0. */
export const ABI_VERSION: u32 = 0x0001_0000;

/** The kind bits of aegis_kinds. */
export const KIND_FILTER: u32 = 1;
export const KIND_MAP: u32 = 2;
export const KIND_AGGREGATE: u32 = 4;

/** The event-time window an aggregate finishes: [start, end) in nanoseconds since the Unix epoch. */
export class Window {
  start: i64 = 0;
  end: i64 = 0;
}

/**
 * The step's configuration: the manifest's `with:` map, a JSON object. It
 * is a copy, so a plugin may keep it and the values it gives.
 */
export class Config {
  constructor(private copy: ArrayBuffer) {}

  /** The configuration as JSON. */
  get raw(): string {
    return decodeUTF8(changetype<usize>(this.copy), this.copy.byteLength);
  }

  /** A member of the configuration; a missing value if none. */
  get(key: string): JSONValue {
    const v = lookup(changetype<usize>(this.copy), this.copy.byteLength, key);
    v.owner = this.copy;
    return v;
  }

  /** The whole configuration as a JSON value. */
  json(): JSONValue {
    return new JSONValue(changetype<usize>(this.copy), this.copy.byteLength, this.copy);
  }
}

/**
 * An aggregate's accumulator: bytes the plugin defines and the host keeps
 * between calls, per group key and window, across instance restarts. The
 * SDK loads it before the plugin's callback and returns it after.
 *
 * An empty state means "no events yet". Reads past the end give 0 and
 * writes past the end grow it with zeros, so a state of fixed-size numbers
 * needs no initialisation: s.setI64(0, s.getI64(0) + 1) counts from 0.
 */
export class State {
  private b: ByteBuf;

  /** A state in garbage-collected memory, or raw (the SDK's own, which live forever). */
  constructor(raw: bool = false) {
    this.b = new ByteBuf(raw);
  }

  /** The length in bytes. */
  @inline get length(): i32 {
    return this.b.len;
  }

  /** The address of the first byte (valid until the state grows). */
  @inline get ptr(): usize {
    return this.b.ptr;
  }

  /** Whether the state is empty: no events yet. */
  @inline isEmpty(): bool {
    return this.b.len == 0;
  }

  /** Sets the length to n bytes, new bytes being 0. */
  resize(n: i32): void {
    const b = this.b;
    if (n > b.len) {
      const p = b.reserve(n - b.len);
      memory.fill(p, 0, <usize>(n - b.len));
    }
    b.len = n;
  }

  /** Empties the state. */
  clear(): void {
    this.b.len = 0;
  }

  /** Replaces the state with the n bytes at p. */
  setBytes(p: usize, n: i32): void {
    this.b.reset();
    this.b.bytes(p, n);
  }

  /** Replaces the state with another's bytes. */
  copyFrom(o: State): void {
    this.setBytes(o.ptr, o.length);
  }

  /** A copy of the bytes. */
  toBytes(): Uint8Array {
    const a = new Uint8Array(this.b.len);
    memory.copy(a.dataStart, this.b.ptr, <usize>this.b.len);
    return a;
  }

  @inline private at(off: i32, size: i32): usize {
    if (off < 0) abort("aegis sdk: negative state offset");
    if (off + size > this.b.len) this.resize(off + size);
    return this.b.ptr + <usize>off;
  }

  @inline private fits(off: i32, size: i32): bool {
    return off >= 0 && off + size <= this.b.len;
  }

  getI64(off: i32): i64 {
    return this.fits(off, 8) ? load<i64>(this.b.ptr + <usize>off) : 0;
  }

  setI64(off: i32, v: i64): void {
    store<i64>(this.at(off, 8), v);
  }

  getF64(off: i32): f64 {
    return this.fits(off, 8) ? load<f64>(this.b.ptr + <usize>off) : 0;
  }

  setF64(off: i32, v: f64): void {
    store<f64>(this.at(off, 8), v);
  }

  getI32(off: i32): i32 {
    return this.fits(off, 4) ? load<i32>(this.b.ptr + <usize>off) : 0;
  }

  setI32(off: i32, v: i32): void {
    store<i32>(this.at(off, 4), v);
  }

  getU8(off: i32): u8 {
    return this.fits(off, 1) ? load<u8>(this.b.ptr + <usize>off) : 0;
  }

  setU8(off: i32, v: u8): void {
    store<u8>(this.at(off, 1), v);
  }
}

// The registered steps.
let filterFn: ((e: Event) => bool) | null = null;
let mapFn: ((e: Event, out: Output) => void) | null = null;
let addFn: ((s: State, e: Event) => void) | null = null;
let mergeFn: ((s: State, other: State) => void) | null = null;
let finishFn: ((key: string, s: State, w: Window, out: Output) => void) | null = null;
let configFn: ((c: Config) => void) | null = null;

/**
 * Registers the module's filter: keep tells whether an event goes on.
 * Events it drops are dropped, not errors; failEvent fails one.
 */
export function registerFilter(keep: (e: Event) => bool): void {
  if (filterFn) abort("aegis sdk: registerFilter called twice");
  filterFn = keep;
}

/**
 * Registers the module's map: fn emits zero or more events to out for each
 * input event. failEvent fails that event alone (the step's error policy
 * decides its fate), and what fn emitted for it is dropped.
 */
export function registerMap(fn: (e: Event, out: Output) => void): void {
  if (mapFn) abort("aegis sdk: registerMap called twice");
  mapFn = fn;
}

/**
 * Registers the module's aggregate over a State the host keeps per group
 * and window:
 *
 * - add folds one event into s; failEvent fails that event alone, and the
 *   SDK puts s back as it was before it;
 * - merge folds other into s (two partial states of one group and window,
 *   either maybe empty); it must be associative;
 * - finish emits the window's results when it closes, also for a window
 *   that saw no events (s is then empty).
 */
export function registerAggregate(
  add: (s: State, e: Event) => void,
  merge: (s: State, other: State) => void,
  finish: (key: string, s: State, w: Window, out: Output) => void,
): void {
  if (addFn) abort("aegis sdk: registerAggregate called twice");
  addFn = add;
  mergeFn = merge;
  finishFn = finish;
}

/**
 * Registers fn to receive the step's configuration before the first event;
 * failCall in fn refuses it (the step does not start). Without it, a
 * plugin refuses any configuration but an empty object. Every instance
 * gets the same configuration and must give the same answer.
 */
export function onConfig(fn: (c: Config) => void): void {
  if (configFn) abort("aegis sdk: onConfig called twice");
  configFn = fn;
}

/** The kinds registered, as aegis_kinds reports them. */
export function kinds(): u32 {
  let k: u32 = 0;
  if (filterFn) k |= KIND_FILTER;
  if (mapFn) k |= KIND_MAP;
  if (addFn) k |= KIND_AGGREGATE;
  return k;
}

// ---- the input buffer ----

let inputPtr: usize = 0;
let inputSize: u32 = 0;

/**
 * aegis_alloc: a new input buffer of size bytes, on the heap. The previous
 * one is dead (the host is done with it), so it is freed first. Returns 0
 * when size is beyond what AssemblyScript can allocate (1 GiB); a heap that
 * cannot grow traps, which the host treats as it treats 0.
 */
export function allocInput(size: u32): usize {
  if (inputPtr != 0) heap.free(inputPtr);
  inputPtr = 0;
  inputSize = 0;
  if (size == 0 || size > <u32>MAX_BUFFER) return 0;
  inputPtr = heap.alloc(<usize>size);
  inputSize = size;
  return inputPtr;
}

/** Whether [ptr, ptr+len) is in the input buffer, where the host writes inputs. */
function inInput(ptr: usize, len: u32): bool {
  return inputPtr != 0 && ptr == inputPtr && len <= inputSize;
}

function notInInput(): u64 {
  return failResult(Status.BAD_INPUT, "input is not in the aegis_alloc buffer");
}

// ---- records ----

// The one Event the SDK passes to callbacks, moved from record to record.
const event = new Event();

// Set by walk when the batch is malformed.
let badBatch = "";

/**
 * Walks the batch of len bytes at p, calling the step of kind for each
 * record. Returns false, with badBatch set, when the batch is malformed.
 */
function walk(p: usize, len: usize, kind: CallKind, state: State | null): bool {
  if (len < 4) {
    badBatch = "batch header: truncated";
    return false;
  }
  const n = load<u32>(p);
  const end = p + len;
  let q = p + 4;
  const e = event;
  for (let i: u32 = 0; i < n; i++) {
    if (end - q < 48) {
      badBatch = "batch: record " + i.toString() + " is truncated";
      return false;
    }
    const size = <usize>load<u32>(q);
    const fixed = <u64>48 + <u64>load<u32>(q, 36) + <u64>load<u32>(q, 40) + <u64>load<u32>(q, 44);
    if (size > end - q || fixed > <u64>size) {
      badBatch = "batch: record " + i.toString() + " does not fit";
      return false;
    }
    e.ptr = q;
    beginEvent(i);
    if (kind == CallKind.FILTER) {
      const keep = filterFn!(e);
      if (keep && !eventFailed) {
        body.u32(i);
        added(1);
      }
    } else if (kind == CallKind.MAP) {
      mapFn!(e, output);
    } else {
      const s = changetype<State>(state);
      // keep the state as it was, to put it back if the event fails
      saved.setBytes(s.ptr, s.length);
      addFn!(s, e);
      if (eventFailed) s.setBytes(saved.ptr, saved.length);
    }
    if (callFailed) return true; // the rest does not matter
    q += size;
  }
  if (q != end) {
    badBatch = "batch: bytes after the last record";
    return false;
  }
  return true;
}

const saved = new State(true);
const stateA = new State(true);
const stateB = new State(true);
const win = new Window();

// ---- the exports' bodies ----

export function handleInit(ptr: usize, len: u32): u64 {
  if (!inInput(ptr, len)) return notInInput();
  beginCall(CallKind.INIT);
  const fn = configFn;
  if (!fn) {
    const it = new Members(ptr, <i32>len);
    if (it.next() || !it.ok) return failResult(Status.BAD_CONFIG, "this plugin takes no configuration");
    return finishCall();
  }
  const copy = new ArrayBuffer(<i32>len);
  memory.copy(changetype<usize>(copy), ptr, len);
  fn(new Config(copy));
  return finishCall();
}

export function handleFilter(ptr: usize, len: u32): u64 {
  if (!inInput(ptr, len)) return notInInput();
  if (!filterFn) return failResult(Status.UNSUPPORTED, "this plugin has no filter");
  beginCall(CallKind.FILTER);
  if (!walk(ptr, len, CallKind.FILTER, null)) return failResult(Status.BAD_INPUT, badBatch);
  return finishCall();
}

export function handleMap(ptr: usize, len: u32): u64 {
  if (!inInput(ptr, len)) return notInInput();
  if (!mapFn) return failResult(Status.UNSUPPORTED, "this plugin has no map");
  beginCall(CallKind.MAP);
  if (!walk(ptr, len, CallKind.MAP, null)) return failResult(Status.BAD_INPUT, badBatch);
  return finishCall();
}

// Reads a State (u32 key length, key, u32 accumulator length, accumulator)
// at p; sets keyPtr/keyLen/accPtr/accLen and returns the address after it,
// or 0 if it does not fit before end.
let keyPtr: usize = 0;
let keyLen: u32 = 0;
let accPtr: usize = 0;
let accLen: u32 = 0;

function readState(p: usize, end: usize): usize {
  if (end - p < 4) return 0;
  keyLen = load<u32>(p);
  if (<u64>keyLen + 8 > <u64>(end - p)) return 0;
  keyPtr = p + 4;
  p = keyPtr + <usize>keyLen;
  accLen = load<u32>(p);
  accPtr = p + 4;
  if (<u64>accLen > <u64>(end - accPtr)) return 0;
  return accPtr + <usize>accLen;
}

export function handleAggregate(ptr: usize, len: u32): u64 {
  if (!inInput(ptr, len)) return notInInput();
  if (!addFn) return failResult(Status.UNSUPPORTED, "this plugin has no aggregate");
  const end = ptr + <usize>len;
  const batch = readState(ptr, end);
  if (batch == 0) return failResult(Status.BAD_INPUT, "state: truncated");
  beginCall(CallKind.AGGREGATE);
  const s = stateA;
  s.setBytes(accPtr, <i32>accLen);
  if (!walk(batch, end - batch, CallKind.AGGREGATE, s)) return failResult(Status.BAD_INPUT, badBatch);
  if (callFailed) return finishCall();
  body.bytes(s.ptr, s.length);
  added(<u32>s.length);
  return finishCall();
}

export function handleMerge(ptr: usize, len: u32): u64 {
  if (!inInput(ptr, len)) return notInInput();
  if (!addFn) return failResult(Status.UNSUPPORTED, "this plugin has no aggregate");
  const end = ptr + <usize>len;
  const q = readState(ptr, end);
  if (q == 0 || end - q < 4) return failResult(Status.BAD_INPUT, "merge input: truncated");
  const bl = load<u32>(q);
  if (<u64>bl != <u64>(end - q - 4)) return failResult(Status.BAD_INPUT, "merge input: accumulator b does not fill the input");
  beginCall(CallKind.MERGE);
  const a = stateA;
  const b = stateB;
  a.setBytes(accPtr, <i32>accLen);
  b.setBytes(q + 4, <i32>bl);
  mergeFn!(a, b);
  if (callFailed) return finishCall();
  body.bytes(a.ptr, a.length);
  added(<u32>a.length);
  return finishCall();
}

export function handleFinish(ptr: usize, len: u32): u64 {
  if (!inInput(ptr, len)) return notInInput();
  if (!addFn) return failResult(Status.UNSUPPORTED, "this plugin has no aggregate");
  const end = ptr + <usize>len;
  const q = readState(ptr, end);
  if (q == 0 || end - q != 16) return failResult(Status.BAD_INPUT, "finish input: want a state and two times");
  beginCall(CallKind.FINISH);
  const s = stateA;
  s.setBytes(accPtr, <i32>accLen);
  const w = win;
  w.start = load<i64>(q);
  w.end = load<i64>(q, 8);
  const key = decodeUTF8(keyPtr, keyLen);
  finishFn!(key, s, w, output);
  return finishCall();
}

