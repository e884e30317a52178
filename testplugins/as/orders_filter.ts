// The orders workload's filter step (BENCHMARKS.md) written with the
// AssemblyScript SDK: it drops refunds. It gives what the Go SDK version
// (testplugins/orders/filter) gives.
import { Event, registerFilter } from "../../sdk/assemblyscript/assembly";
export * from "../../sdk/assemblyscript/assembly/exports";

registerFilter((e: Event): bool => !e.typeIs("order.refunded"));
