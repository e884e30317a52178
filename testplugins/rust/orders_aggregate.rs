//! The orders workload's aggregate step (BENCHMARKS.md) written with the
//! Rust SDK: the count and the sum of amount_cents of the events of a group
//! (the host groups them by type and windows them). It emits one event per
//! group and window:
//!
//!     {"key":"ORDER.PAID","count":2,"sum_cents":15838,"start":...,"end":...}
//!
//! Its accumulator is the Go plugin's (testplugins/orders/aggregate): count
//! then sum, two little-endian i64, so either can take over from the other.

use aegis_sdk::{Accumulator, Aggregate, Data, Editor, Error, Event, OutEvent, Output, Window};

#[derive(Default)]
struct Totals {
    count: i64,
    sum_cents: i64,
}

impl Accumulator for Totals {
    fn encode(&self, acc: &mut Vec<u8>) {
        [self.count, self.sum_cents].encode(acc)
    }

    fn decode(acc: &[u8]) -> Option<Self> {
        let [count, sum_cents] = <[i64; 2]>::decode(acc)?;
        Some(Totals { count, sum_cents })
    }
}

#[derive(Default)]
struct Orders {
    ed: Editor,
}

impl Aggregate for Orders {
    type State = Totals;

    fn add(&mut self, s: &mut Totals, e: &Event) -> Result<(), Error> {
        let cents = e
            .field("amount_cents")
            .as_i64()
            .ok_or_else(|| Error::new(2, "amount_cents is missing or not an integer"))?;
        // Wrapping, as Go's int64 arithmetic.
        s.count = s.count.wrapping_add(1);
        s.sum_cents = s.sum_cents.wrapping_add(cents);
        Ok(())
    }

    fn merge(&mut self, s: &mut Totals, o: &Totals) {
        s.count = s.count.wrapping_add(o.count);
        s.sum_cents = s.sum_cents.wrapping_add(o.sum_cents);
    }

    fn finish(&mut self, key: &str, s: &Totals, w: Window, out: &mut Output) -> Result<(), Error> {
        let doc = self
            .ed
            .reset()
            .set_str("key", key)
            .set_i64("count", s.count)
            .set_i64("sum_cents", s.sum_cents)
            .set_i64("start", w.start)
            .set_i64("end", w.end)
            .apply(b"{}")
            .ok_or("cannot build the window's document")?;
        out.emit(&OutEvent::new("order.window", "aggregate", Data::Json(doc)))
    }
}

aegis_sdk::aggregate!(Orders::default());
