//! The orders workload's filter step (BENCHMARKS.md) written with the Rust
//! SDK: it drops refunds. It gives what testplugins/orders/filter gives.

use aegis_sdk::Event;

fn keep(e: &Event) -> bool {
    e.event_type() != "order.refunded"
}

aegis_sdk::filter!(keep);
