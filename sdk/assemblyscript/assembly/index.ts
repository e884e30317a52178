// The aegis guest SDK for AssemblyScript: write a filter, a map or an
// aggregate step of aegis-host as a WebAssembly module that follows ABI 1.0
// (abi/ABI.md). A plugin registers its step at top level and re-exports
// the ABI exports:
//
//   import { Event, registerFilter } from "<path to the SDK>/assembly";
//   export * from "<path to the SDK>/assembly/exports";
//
//   registerFilter((e: Event): bool => !e.typeIs("order.refunded"));
//
// See ../README.md for the build flags, which matter.

export { ABI_VERSION, KIND_FILTER, KIND_MAP, KIND_AGGREGATE, Window, Config, State } from "./plugin";
export { registerFilter, registerMap, registerAggregate, onConfig } from "./plugin";
export { DataKind, Event, MetaIter, OutEvent } from "./event";
export { Status, Output, failEvent, failCall } from "./result";
export { JSONValue, Members, Editor, lookup, validJSON, appendQuoted, appendQuotedUTF8, appendNumber } from "./json";
export { parseF64, parseI64, numberOK } from "./number";
export { ByteBuf, utf8Equals, validUTF8, decodeUTF8 } from "./bytes";
export { Level, log, logDebug, logInfo, logWarn, logError } from "./log";
