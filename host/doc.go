// Package host runs aegis-host's WebAssembly steps: it loads plugins into
// a wazero sandbox, checks them against ABI v1 (abi/ABI.md) before the first
// event, compiles them through a disk cache, keeps a pool of instances per
// step (one per worker, never called concurrently) and implements
// engine.Step and engine.Aggregator on top of them.
//
// A plugin cannot hurt the host: its memory is capped, every call has a
// deadline, it sees no filesystem, network, environment or real clock
// unless the step grants them, and every pointer and length it returns is
// checked. A trap, a deadline or a bad result discards the instance and
// returns a *CallError naming plugin, export, batch and, where known, event;
// the next call gets a fresh instance.
package host
