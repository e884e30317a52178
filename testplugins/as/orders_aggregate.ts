// The orders workload's aggregate step (BENCHMARKS.md) written with the
// AssemblyScript SDK: the count of the events of a group and window and
// the sum of their amount_cents (the host groups them by type and windows
// them). It emits one event per group and window, as the Go SDK version
// (testplugins/orders/aggregate) does:
//
//   {"key":"ORDER.PAID","count":2,"sum_cents":15838,"start":...,"end":...}
//
// The state is the Go version's byte for byte, two little-endian int64s:
// count, then sum_cents, so either plugin reads the other's accumulators.
import {
  Event, Output, OutEvent, Editor, State, Window, failEvent, failCall, registerAggregate,
} from "../../sdk/assemblyscript/assembly";
export * from "../../sdk/assemblyscript/assembly/exports";

const COUNT = 0;
const SUM = 8;
const SIZE = 16;

const ed = new Editor();
const o = new OutEvent();

// An accumulator is empty (no events yet) or SIZE bytes.
function wellFormed(s: State): bool {
  if (s.length == 0 || s.length == SIZE) return true;
  failCall("accumulator: " + s.length.toString() + " bytes, want " + SIZE.toString());
  return false;
}

registerAggregate(
  (s: State, e: Event): void => {
    if (!wellFormed(s)) return;
    const c = e.field("amount_cents");
    if (!c.isI64()) {
      failEvent("amount_cents is missing or not an integer", 2);
      return;
    }
    s.setI64(COUNT, s.getI64(COUNT) + 1);
    s.setI64(SUM, s.getI64(SUM) + c.asI64());
  },
  (s: State, other: State): void => {
    if (!wellFormed(s) || !wellFormed(other)) return;
    s.setI64(COUNT, s.getI64(COUNT) + other.getI64(COUNT));
    s.setI64(SUM, s.getI64(SUM) + other.getI64(SUM));
  },
  (key: string, s: State, w: Window, out: Output): void => {
    if (!wellFormed(s)) return;
    ed.reset()
      .setString("key", key)
      .setInt("count", s.getI64(COUNT))
      .setInt("sum_cents", s.getI64(SUM))
      .setInt("start", w.start)
      .setInt("end", w.end)
      .build();
    out.emit(o.reset().setType("order.window").setSource("aggregate").setJSONBytes(ed.ptr, ed.length));
  },
);
