//! The orders workload's map step (BENCHMARKS.md) written with the Rust
//! SDK: it upper-cases the type and adds amount_cents and region (the
//! fourth ':'-separated field of source) to the payload. It gives what
//! testplugins/orders/map gives: the same events, and the same event errors
//! (code 1) for data that is not a JSON object with a numeric amount.

use aegis_sdk::{Data, Editor, Error, Event, Map, Output};

/// The buffers kept from event to event.
#[derive(Default)]
struct Enrich {
    ed: Editor,
    upper: String,
}

impl Map for Enrich {
    fn map(&mut self, e: &Event, out: &mut Output) -> Result<(), Error> {
        let amount = e
            .field("amount")
            .as_f64()
            .ok_or("amount is missing or not a number")?;
        self.upper.clear();
        self.upper.push_str(e.event_type());
        self.upper.make_ascii_uppercase();
        // Go's math.Round (half away from zero) and int64 conversion
        // (saturating in WebAssembly) are Rust's round and `as`.
        let cents = (amount * 100.0).round() as i64;
        let doc = self
            .ed
            .reset()
            .set_str("type", &self.upper)
            .set_i64("amount_cents", cents)
            .set_str("region", field(e.source(), b':', 3))
            .apply(e.data())
            .ok_or("data is not a JSON object")?;
        let mut o = e.to_out();
        o.event_type = &self.upper;
        o.data = Data::Json(doc);
        out.emit(&o)
    }
}

/// The n-th (0-based) sep-separated field of s, or "".
fn field(s: &str, sep: u8, n: usize) -> &str {
    let mut start = 0;
    let mut n = n;
    for (i, &c) in s.as_bytes().iter().enumerate() {
        if c == sep {
            if n == 0 {
                return &s[start..i];
            }
            n -= 1;
            start = i + 1;
        }
    }
    if n == 0 {
        &s[start..]
    } else {
        ""
    }
}

aegis_sdk::map!(Enrich::default());
