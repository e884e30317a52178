// Package host runs aegis-host's WebAssembly steps: it loads plugins into
// a wazero sandbox, checks them against ABI v1 (abi/ABI.md) before the first
// event, compiles them through a disk cache, keeps a pool of instances per
// step (one per worker, never called concurrently) and implements
// engine.Step and engine.Aggregator on top of them.
//
// A plugin cannot hurt the host: its memory is capped, every call has a
// deadline and a fuel budget, it sees no filesystem, network, environment
// or real clock unless the step grants them, and every pointer and length
// it returns is checked. A trap, a limit or a bad result discards the
// instance and returns a *CallError naming plugin, export, batch and, where
// known, event; the next call gets a fresh instance.
//
// Limits are the module's own: at load, before compilation, every module
// is rewritten (host/internal/meter) to count the WebAssembly instructions
// it runs (its fuel, exact and deterministic) and to call the host back
// about every 100,000 of them. At that checkpoint the host ends a call whose
// fuel is spent, whose deadline has passed or whose context is done, with
// a *LimitError; being Go code, the checkpoint is also where the Go runtime
// can preempt the guest, which compiled wasm code never allows otherwise.
package host
