// The ABI exports (abi/ABI.md section 3). A plugin re-exports them all from
// its entry file, after registering its step:
//
//   export * from "<path to the SDK>/assembly/exports";
//
// Each has exactly the WebAssembly type the ABI gives. The step exports of
// kinds the plugin did not register answer status 4 (unsupported), and
// aegis_kinds reports only the registered kinds, so the host never calls
// them.

// The handlers that --use abort=aegisAbort (and trace, seed) name.
import "./log";
import {
  ABI_VERSION, kinds, allocInput, handleInit, handleFilter, handleMap, handleAggregate, handleMerge, handleFinish,
} from "./plugin";

/** () -> i32: the ABI version, major << 16 | minor. */
export function aegis_abi_version(): u32 {
  return ABI_VERSION;
}

/** () -> i32: the kinds the plugin registered, a bit set. */
export function aegis_kinds(): u32 {
  return kinds();
}

/** (i32) -> i32: the input buffer, size bytes; 0 if it cannot be had. */
export function aegis_alloc(size: u32): usize {
  return allocInput(size);
}

/** (i32, i32) -> i64: receives the configuration. */
export function aegis_init(ptr: usize, len: u32): u64 {
  return handleInit(ptr, len);
}

/** (i32, i32) -> i64: filters a batch. */
export function aegis_filter(ptr: usize, len: u32): u64 {
  return handleFilter(ptr, len);
}

/** (i32, i32) -> i64: maps a batch. */
export function aegis_map(ptr: usize, len: u32): u64 {
  return handleMap(ptr, len);
}

/** (i32, i32) -> i64: folds a batch into an accumulator. */
export function aegis_aggregate(ptr: usize, len: u32): u64 {
  return handleAggregate(ptr, len);
}

/** (i32, i32) -> i64: merges two accumulators. */
export function aegis_merge(ptr: usize, len: u32): u64 {
  return handleMerge(ptr, len);
}

/** (i32, i32) -> i64: turns an accumulator into the events of a closed window. */
export function aegis_finish(ptr: usize, len: u32): u64 {
  return handleFinish(ptr, len);
}
