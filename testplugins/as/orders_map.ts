// The orders workload's map step (BENCHMARKS.md) written with the
// AssemblyScript SDK. It gives what the Go SDK version
// (testplugins/orders/map) gives: the type upper-cased (ASCII), and the
// payload with amount_cents = round(amount*100) (half away from zero, as
// Go's math.Round) and region = the fourth ':'-separated field of the
// source. An event whose amount is missing or not a number, or whose data
// is not a JSON object, fails alone with code 1.
import { Event, Output, OutEvent, Editor, failEvent, registerMap } from "../../sdk/assemblyscript/assembly";
export * from "../../sdk/assemblyscript/assembly/exports";

// Reused for every event: the map allocates nothing per event but the
// JSONValue of the amount.
const ed = new Editor();
const o = new OutEvent();

// Go's math.Round: half away from zero. x - trunc(x) is exact.
function round(x: f64): f64 {
  const t = Math.trunc(x);
  if (Math.abs(x - t) >= 0.5) return t + (x < 0 ? -1 : 1);
  return t;
}

// The region: after the third ':' of the source, up to the next or the end;
// "" when the source has fewer than three.
let regionPtr: usize = 0;
let regionLen: i32 = 0;

function findRegion(p: usize, n: i32): void {
  const end = p + <usize>n;
  let colons = 0;
  regionPtr = 0;
  regionLen = 0;
  for (let q = p; q < end; q++) {
    if (load<u8>(q) != 0x3a) continue;
    if (colons == 3) {
      regionLen = <i32>(q - regionPtr);
      return;
    }
    colons++;
    if (colons == 3) regionPtr = q + 1;
  }
  if (colons == 3) regionLen = <i32>(end - regionPtr);
}

registerMap((e: Event, out: Output): void => {
  const amount = e.field("amount").asF64();
  if (isNaN(amount)) {
    failEvent("amount is missing or not a number");
    return;
  }
  findRegion(e.sourcePtr, e.sourceLen);
  ed.reset()
    .setStringBytes("type", e.typePtr, e.typeLen, true)
    .setInt("amount_cents", <i64>round(amount * 100)) // saturates, as Go's conversion on wasm
    .setStringBytes("region", regionPtr, regionLen);
  if (!ed.apply(e.dataPtr, e.dataLen)) {
    failEvent("data is not a JSON object");
    return;
  }
  out.emit(e.out(o).setTypeUpper(e.typePtr, e.typeLen).setJSONBytes(ed.ptr, ed.length));
});
