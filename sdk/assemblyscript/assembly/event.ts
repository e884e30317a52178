// Events: read-only views of the records the host sends (Event), and the
// events a plugin emits (OutEvent). See ABI.md section 7 for the layout.

import { ByteBuf, decodeUTF8, utf8Equals } from "./bytes";
import { JSONValue, lookup } from "./json";

/** The kind of an event's data (ABI.md section 7). */
export enum DataKind {
  NULL = 0,
  BOOL = 1,
  INT = 2,
  FLOAT = 3,
  STRING = 4,
  BYTES = 5,
  JSON = 6,
}

/** The size of a record's fixed header. */
export const HEADER_SIZE: i32 = 48;

/**
 * A read-only view of one input event. It copies nothing: it points into
 * the input the host wrote, and is valid only during the callback it was
 * given to (the SDK reuses one Event for every record). Strings returned by
 * its getters (type, source, ...) are copies and may be kept.
 */
export class Event {
  /** The address of the record in the input. */
  ptr: usize = 0;

  /** The event's position in its batch. */
  @inline get index(): u32 {
    return load<u32>(this.ptr, 4);
  }

  /** When the event happened, in nanoseconds since the Unix epoch; 0 if unset. */
  @inline get time(): i64 {
    return load<i64>(this.ptr, 24);
  }

  /** The kind of the event's data. */
  @inline get kind(): DataKind {
    return <DataKind>load<u8>(this.ptr, 32);
  }

  /** The address of the event's 16-byte id (the bytes of a UUID). */
  @inline get idPtr(): usize {
    return this.ptr + 8;
  }

  /** Whether the event has an id (not all zero). */
  get hasID(): bool {
    return (load<u64>(this.ptr, 8) | load<u64>(this.ptr, 16)) != 0;
  }

  /** A copy of the event's 16-byte id. */
  get id(): Uint8Array {
    const a = new Uint8Array(16);
    memory.copy(a.dataStart, this.ptr + 8, 16);
    return a;
  }

  /** The address of the event type's UTF-8 bytes. */
  @inline get typePtr(): usize {
    return this.ptr + 48;
  }

  /** The length of the event type in bytes. */
  @inline get typeLen(): i32 {
    return <i32>load<u32>(this.ptr, 36);
  }

  /** The event type, such as "order.created" (a copy). */
  get type(): string {
    return decodeUTF8(this.typePtr, this.typeLen);
  }

  /** Whether the event type is t, without allocating. */
  typeIs(t: string): bool {
    return utf8Equals(this.typePtr, this.typeLen, t);
  }

  /** The address of the source's UTF-8 bytes. */
  @inline get sourcePtr(): usize {
    return this.ptr + 48 + <usize>load<u32>(this.ptr, 36);
  }

  /** The length of the source in bytes. */
  @inline get sourceLen(): i32 {
    return <i32>load<u32>(this.ptr, 40);
  }

  /** Where the event happened (a copy); may be empty. */
  get source(): string {
    return decodeUTF8(this.sourcePtr, this.sourceLen);
  }

  /** Whether the source is s, without allocating. */
  sourceIs(s: string): bool {
    return utf8Equals(this.sourcePtr, this.sourceLen, s);
  }

  /** The address of the data's bytes, encoded as kind says. */
  @inline get dataPtr(): usize {
    return this.ptr + 48 + <usize>load<u32>(this.ptr, 36) + <usize>load<u32>(this.ptr, 40);
  }

  /** The length of the data in bytes. */
  @inline get dataLen(): i32 {
    return <i32>load<u32>(this.ptr, 44);
  }

  /** A copy of the data's bytes. */
  get data(): Uint8Array {
    const n = this.dataLen;
    const a = new Uint8Array(n);
    memory.copy(a.dataStart, this.dataPtr, <usize>n);
    return a;
  }

  /** Int data; 0 when the kind is not INT. */
  asInt(): i64 {
    return this.kind == DataKind.INT && this.dataLen == 8 ? load<i64>(this.dataPtr) : 0;
  }

  /** Float data; NaN when the kind is not FLOAT. */
  asFloat(): f64 {
    return this.kind == DataKind.FLOAT && this.dataLen == 8 ? load<f64>(this.dataPtr) : NaN;
  }

  /** Bool data; false when the kind is not BOOL. */
  asBool(): bool {
    return this.kind == DataKind.BOOL && this.dataLen == 1 && load<u8>(this.dataPtr) == 1;
  }

  /** String data (a copy); null when the kind is not STRING. */
  asText(): string | null {
    return this.kind == DataKind.STRING ? decodeUTF8(this.dataPtr, this.dataLen) : null;
  }

  /** The whole JSON document; a missing value when the kind is not JSON. */
  json(): JSONValue {
    if (this.kind != DataKind.JSON) return new JSONValue();
    return new JSONValue(this.dataPtr, this.dataLen);
  }

  /**
   * The top-level member name of JSON data, without decoding the document;
   * a missing value when the data is not JSON or has no such member.
   */
  field(name: string): JSONValue {
    if (this.kind != DataKind.JSON) return new JSONValue();
    return lookup(this.dataPtr, this.dataLen, name);
  }

  /** The number of metadata entries. */
  @inline get metaCount(): i32 {
    return <i32>load<u16>(this.ptr, 34);
  }

  /** The address of the encoded metadata entries. */
  @inline get metaPtr(): usize {
    return this.dataPtr + <usize>load<u32>(this.ptr, 44);
  }

  /** The length of the encoded metadata entries in bytes. */
  @inline get metaLen(): i32 {
    return <i32>(this.ptr + <usize>load<u32>(this.ptr) - this.metaPtr);
  }

  /** The value of a metadata entry (a copy); null if there is none. */
  meta(key: string): string | null {
    const it = metaIter.reset(this.metaPtr, this.metaLen);
    while (it.next()) {
      if (utf8Equals(it.keyPtr, it.keyLen, key)) return decodeUTF8(it.valuePtr, it.valueLen);
    }
    return null;
  }

  /** An iterator over the metadata entries. */
  metaEntries(): MetaIter {
    return new MetaIter().reset(this.metaPtr, this.metaLen);
  }

  /**
   * An output event that starts as a copy of this one (id, time, type,
   * source, data and metadata), to change and emit. Like this event it
   * points into the input until changed: emit it during the callback. Pass
   * an OutEvent to reuse it instead of allocating one.
   */
  out(o: OutEvent | null = null): OutEvent {
    const r = o ? o : new OutEvent();
    r.copyFrom(this);
    return r;
  }
}

const metaIter = new MetaIter();

/**
 * Walks encoded metadata entries (u32 key length, u32 value length, key,
 * value), stopping at an entry that does not fit:
 *
 *     const it = e.metaEntries();
 *     while (it.next()) { log(Level.INFO, it.key + "=" + it.value); }
 */
export class MetaIter {
  keyPtr: usize = 0;
  keyLen: i32 = 0;
  valuePtr: usize = 0;
  valueLen: i32 = 0;
  private p: usize = 0;
  private end: usize = 0;

  reset(ptr: usize, len: i32): MetaIter {
    this.p = ptr;
    this.end = ptr + <usize>len;
    return this;
  }

  next(): bool {
    const p = this.p;
    if (this.end - p < 8) return false;
    const kl = <u64>load<u32>(p);
    const vl = <u64>load<u32>(p, 4);
    if (8 + kl + vl > <u64>(this.end - p)) return false;
    this.keyPtr = p + 8;
    this.keyLen = <i32>kl;
    this.valuePtr = p + 8 + <usize>kl;
    this.valueLen = <i32>vl;
    this.p = this.valuePtr + <usize>vl;
    return true;
  }

  /** The entry's key (a copy). */
  get key(): string {
    return decodeUTF8(this.keyPtr, this.keyLen);
  }

  /** The entry's value (a copy). */
  get value(): string {
    return decodeUTF8(this.valuePtr, this.valueLen);
  }
}

/**
 * An event that a map or an aggregate's finish emits with Output.emit. A
 * zero id asks the host for a new one; a zero time means the input event's
 * time (map) or the window's end (finish).
 *
 * Its type, source, data and metadata are byte ranges: the setters that
 * take a string or a number copy it into the OutEvent's own buffers, and
 * the *Bytes setters only point at the bytes given, which must then stay
 * valid until emit. emit copies everything, so an OutEvent may be reused
 * for the next event (a global one allocates nothing once its buffers
 * have grown).
 */
export class OutEvent {
  /** The id's first 8 bytes, as a little-endian u64. */
  idLo: u64 = 0;
  /** The id's last 8 bytes, as a little-endian u64. */
  idHi: u64 = 0;
  time: i64 = 0;
  kind: DataKind = DataKind.NULL;
  typePtr: usize = 0;
  typeLen: i32 = 0;
  sourcePtr: usize = 0;
  sourceLen: i32 = 0;
  dataPtr: usize = 0;
  dataLen: i32 = 0;
  metaPtr: usize = 0;
  metaLen: i32 = 0;
  metaCount: i32 = 0;

  private typeBuf: ByteBuf | null = null;
  private sourceBuf: ByteBuf | null = null;
  private dataBuf: ByteBuf | null = null;
  private metaBuf: ByteBuf | null = null;
  private metaSpare: ByteBuf | null = null;
  private keep: ArrayBuffer | null = null; // bytes of setBytes

  /** Clears everything: no id, no time, no type, null data, no metadata. */
  reset(): OutEvent {
    this.idLo = 0;
    this.idHi = 0;
    this.time = 0;
    this.kind = DataKind.NULL;
    this.typeLen = 0;
    this.sourceLen = 0;
    this.dataLen = 0;
    this.metaLen = 0;
    this.metaCount = 0;
    this.keep = null;
    return this;
  }

  /** Makes this a copy of e (pointing into the input). */
  copyFrom(e: Event): OutEvent {
    const p = e.ptr;
    this.idLo = load<u64>(p, 8);
    this.idHi = load<u64>(p, 16);
    this.time = e.time;
    this.kind = e.kind;
    this.typePtr = e.typePtr;
    this.typeLen = e.typeLen;
    this.sourcePtr = e.sourcePtr;
    this.sourceLen = e.sourceLen;
    this.dataPtr = e.dataPtr;
    this.dataLen = e.dataLen;
    this.metaPtr = e.metaPtr;
    this.metaLen = e.metaLen;
    this.metaCount = e.metaCount;
    this.keep = null;
    return this;
  }

  /** Sets the id from 16 bytes (a UUID's). */
  setID(id: Uint8Array): OutEvent {
    if (id.length != 16) abort("aegis sdk: an id has 16 bytes");
    this.idLo = load<u64>(id.dataStart);
    this.idHi = load<u64>(id.dataStart, 8);
    return this;
  }

  /** Clears the id: the host assigns a new one. */
  clearID(): OutEvent {
    this.idLo = 0;
    this.idHi = 0;
    return this;
  }

  private static own(b: ByteBuf | null): ByteBuf {
    if (b) {
      b.reset();
      return b;
    }
    return new ByteBuf();
  }

  /** Sets the event type. */
  setType(t: string): OutEvent {
    const b = OutEvent.own(this.typeBuf);
    this.typeBuf = b;
    b.utf8(t);
    this.typePtr = b.ptr;
    this.typeLen = b.len;
    return this;
  }

  /** Sets the event type to the n bytes of UTF-8 at p (not copied until emit). */
  setTypeBytes(p: usize, n: i32): OutEvent {
    this.typePtr = p;
    this.typeLen = n;
    return this;
  }

  /** Sets the event type to the n bytes of UTF-8 at p with ASCII letters upper-cased (copied). */
  setTypeUpper(p: usize, n: i32): OutEvent {
    const b = OutEvent.own(this.typeBuf);
    this.typeBuf = b;
    const d = b.reserve(n);
    for (let i: usize = 0; i < <usize>n; i++) {
      const c = <u32>load<u8>(p + i);
      store<u8>(d + i, <u8>(c - 0x61 < 26 ? c - 0x20 : c));
    }
    b.len = n;
    this.typePtr = b.ptr;
    this.typeLen = n;
    return this;
  }

  /** Sets the source. */
  setSource(s: string): OutEvent {
    const b = OutEvent.own(this.sourceBuf);
    this.sourceBuf = b;
    b.utf8(s);
    this.sourcePtr = b.ptr;
    this.sourceLen = b.len;
    return this;
  }

  /** Sets the source to the n bytes of UTF-8 at p (not copied until emit). */
  setSourceBytes(p: usize, n: i32): OutEvent {
    this.sourcePtr = p;
    this.sourceLen = n;
    return this;
  }

  private ownData(kind: DataKind): ByteBuf {
    const b = OutEvent.own(this.dataBuf);
    this.dataBuf = b;
    this.kind = kind;
    this.keep = null;
    return b;
  }

  @inline private dataFrom(b: ByteBuf): OutEvent {
    this.dataPtr = b.ptr;
    this.dataLen = b.len;
    return this;
  }

  /** Sets null data. */
  setNull(): OutEvent {
    this.kind = DataKind.NULL;
    this.dataLen = 0;
    this.keep = null;
    return this;
  }

  /** Sets bool data. */
  setBool(v: bool): OutEvent {
    const b = this.ownData(DataKind.BOOL);
    b.byte(v ? 1 : 0);
    return this.dataFrom(b);
  }

  /** Sets int data. */
  setInt(v: i64): OutEvent {
    const b = this.ownData(DataKind.INT);
    b.u64(<u64>v);
    return this.dataFrom(b);
  }

  /** Sets float data. */
  setFloat(v: f64): OutEvent {
    const b = this.ownData(DataKind.FLOAT);
    b.u64(reinterpret<u64>(v));
    return this.dataFrom(b);
  }

  /** Sets string data. */
  setString(s: string): OutEvent {
    const b = this.ownData(DataKind.STRING);
    b.utf8(s);
    return this.dataFrom(b);
  }

  /** Sets string data to the n bytes of UTF-8 at p (not copied until emit). */
  setStringBytes(p: usize, n: i32): OutEvent {
    return this.setData(DataKind.STRING, p, n);
  }

  /** Sets JSON data from its text, which must be one well-formed JSON value. */
  setJSON(doc: string): OutEvent {
    const b = this.ownData(DataKind.JSON);
    b.utf8(doc);
    return this.dataFrom(b);
  }

  /** Sets JSON data to the n bytes at p (not copied until emit), such as an Editor's result. */
  setJSONBytes(p: usize, n: i32): OutEvent {
    return this.setData(DataKind.JSON, p, n);
  }

  /** Sets bytes data (kept, not copied, until emit). */
  setBytes(a: Uint8Array): OutEvent {
    this.setData(DataKind.BYTES, a.dataStart, a.length);
    this.keep = a.buffer;
    return this;
  }

  /** Sets data of any kind to the n bytes at p, encoded as kind says (not copied until emit). */
  setData(kind: DataKind, p: usize, n: i32): OutEvent {
    this.kind = kind;
    this.dataPtr = p;
    this.dataLen = n;
    this.keep = null;
    return this;
  }

  /** Sets a metadata entry, replacing one of the same key. */
  setMeta(key: string, value: string): OutEvent {
    const b = this.metaWithout(key);
    const kl = b.len;
    b.u32(0);
    b.u32(0);
    b.utf8(key);
    const vl = b.len;
    b.utf8(value);
    store<u32>(b.ptr + <usize>kl, <u32>(vl - kl - 8));
    store<u32>(b.ptr + <usize>kl, <u32>(b.len - vl), 4);
    this.metaCount++;
    this.metaPtr = b.ptr;
    this.metaLen = b.len;
    return this;
  }

  /** Removes a metadata entry. */
  deleteMeta(key: string): OutEvent {
    const b = this.metaWithout(key);
    this.metaPtr = b.ptr;
    this.metaLen = b.len;
    return this;
  }

  /** Removes every metadata entry. */
  clearMeta(): OutEvent {
    this.metaLen = 0;
    this.metaCount = 0;
    return this;
  }

  // Copies the entries but key into the spare buffer, which becomes the
  // metadata's (the entries may live in the other one).
  private metaWithout(key: string): ByteBuf {
    const b = OutEvent.own(this.metaSpare);
    const it = metaIter.reset(this.metaPtr, this.metaLen);
    let n = 0;
    while (it.next()) {
      if (utf8Equals(it.keyPtr, it.keyLen, key)) continue;
      b.u32(<u32>it.keyLen);
      b.u32(<u32>it.valueLen);
      b.bytes(it.keyPtr, it.keyLen);
      b.bytes(it.valuePtr, it.valueLen);
      n++;
    }
    this.metaSpare = this.metaBuf;
    this.metaBuf = b;
    this.metaCount = n;
    return b;
  }
}
