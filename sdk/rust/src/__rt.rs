//! The bodies of the ABI exports, which the registration macros define in
//! the plugin's crate. Not part of the SDK's API.
//!
//! The host writes every input at the start of the input buffer (the buffer
//! `aegis_alloc` returned last) and reads every result from the result
//! writer's buffer, which stays unchanged until the next call. The host never
//! calls an instance concurrently, which makes the `static mut`s below
//! sound: each is used by one call at a time.

use std::ptr::{addr_of, addr_of_mut};

use crate::abi::{self, pack, records, DecodeError, ResultWriter, Status};
use crate::aggregate::{Accumulator, Aggregate};
use crate::config::{self, Config};
use crate::json::members;
use crate::output::Output;
use crate::{Error, Event, Filter, Map};

static mut INPUT: Vec<u8> = Vec::new();
static mut RESULT: ResultWriter = ResultWriter::new();
static mut INITIALIZED: bool = false;

const NOT_INPUT: &str = "input is not in the buffer aegis_alloc returned";

fn result_writer() -> &'static mut ResultWriter {
    // SAFETY: one call at a time, and no call keeps it.
    unsafe { &mut *addr_of_mut!(RESULT) }
}

/// The input of a call: `[ptr, ptr+len)`, which must lie at the start of
/// the input buffer.
fn input(ptr: i32, len: i32) -> Option<&'static [u8]> {
    // SAFETY: the buffer changes only in aegis_alloc, never during a call.
    let buf = unsafe { &*addr_of!(INPUT) };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if buf.is_empty() || ptr != buf.as_ptr() as usize || len > buf.len() {
        return None;
    }
    Some(&buf[..len])
}

/// Starts a call: the result writer, reset, and the call's input; or the
/// result that fails the call when the input is not where it must be.
fn start(ptr: i32, len: i32) -> Result<(&'static mut ResultWriter, &'static [u8]), i64> {
    let w = result_writer();
    w.reset();
    match input(ptr, len) {
        Some(i) => Ok((w, i)),
        None => Err(fail(w, Status::BadInput, NOT_INPUT)),
    }
}

/// The region of a result, packed.
fn region(r: &[u8]) -> i64 {
    pack(r.as_ptr() as usize as u32, r.len() as u32)
}

fn fail(w: &mut ResultWriter, status: Status, msg: &str) -> i64 {
    region(w.fail(status, msg))
}

fn bad_input(w: &mut ResultWriter, err: DecodeError) -> i64 {
    fail(w, Status::BadInput, &err.to_string())
}

/// Reports whether `_initialize` runs for the first time.
pub fn first_initialize() -> bool {
    // SAFETY: one call at a time.
    unsafe {
        let first = !*addr_of!(INITIALIZED);
        *addr_of_mut!(INITIALIZED) = true;
        first
    }
}

/// Returns the value in `*p`, made by `make` on first use. `p` must be used
/// by this call site alone (one `T` for it), and never concurrently.
///
/// # Safety
///
/// The caller must give each call site its own `p`, and must not use the
/// reference it returns beyond the call it was taken in.
pub unsafe fn slot<T>(p: &mut *mut u8, make: impl FnOnce() -> T) -> &'static mut T {
    if p.is_null() {
        *p = Box::into_raw(Box::new(make())) as *mut u8;
    }
    &mut *(*p as *mut T)
}

/// `aegis_alloc`: the previous input buffer is dead; returns a new one of
/// `size` bytes, or 0 if memory cannot grow that far.
pub fn alloc(size: i32) -> i32 {
    let size = (size as u32).max(1) as usize;
    // SAFETY: never during a call that reads the input.
    let buf = unsafe { &mut *addr_of_mut!(INPUT) };
    // Free the old buffer first, so that its memory may be reused.
    *buf = Vec::new();
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(size).is_err() {
        return 0;
    }
    v.resize(size, 0);
    *buf = v;
    buf.as_ptr() as usize as i32
}

/// `aegis_init`: with a handler, keeps the configuration and lets the
/// handler accept or refuse it; without, accepts only an empty object.
pub fn init<F>(ptr: i32, len: i32, handler: Option<F>) -> i64
where
    F: FnOnce(&Config) -> Result<(), Error>,
{
    let (w, input) = match start(ptr, len) {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    match handler {
        None => {
            let mut empty = true;
            if !(members(input, |_, _| {
                empty = false;
                false
            }) && empty)
            {
                return fail(w, Status::BadConfig, "this plugin takes no configuration");
            }
        }
        Some(handler) => {
            if let Err(e) = handler(config::store(input)) {
                return fail(w, Status::BadConfig, e.message());
            }
        }
    }
    region(w.finish())
}

/// Calls f with the result writer and each event of a batch, in order; a
/// record that does not decode ends the loop with the result that fails
/// the call.
fn each_event<'a, F>(w: &mut ResultWriter, batch: &'a [u8], mut f: F) -> Result<(), i64>
where
    F: FnMut(&mut ResultWriter, &Event<'a>),
{
    for r in records(batch) {
        match r {
            Ok(e) => f(w, &e),
            Err(err) => return Err(bad_input(w, err)),
        }
    }
    Ok(())
}

/// `aegis_filter`.
pub fn filter<F: Filter>(ptr: i32, len: i32, f: &mut F) -> i64 {
    let (w, input) = match start(ptr, len) {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    let each = each_event(w, input, |w, e| match f.keep(e) {
        Ok(true) => w.push_index(e.index()),
        Ok(false) => {}
        Err(err) => w.add_error(e.index(), err.code(), err.message()),
    });
    if let Err(failed) = each {
        return failed;
    }
    region(w.finish())
}

/// `aegis_map`.
pub fn map<M: Map>(ptr: i32, len: i32, m: &mut M) -> i64 {
    let (w, input) = match start(ptr, len) {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    let each = each_event(w, input, |w, e| {
        let mut out = Output::new(w, e.index());
        let err = match m.map(e, &mut out) {
            Ok(()) => out.take_err(),
            Err(err) => Some(err),
        };
        // The host discards the records emitted for a failed event.
        if let Some(err) = err {
            w.add_error(e.index(), err.code(), err.message());
        }
    });
    if let Err(failed) = each {
        return failed;
    }
    region(w.finish())
}

/// Decodes an accumulator; an empty one is the initial state.
fn load<S: Accumulator>(w: &mut ResultWriter, acc: &[u8]) -> Result<S, i64> {
    if acc.is_empty() {
        return Ok(S::default());
    }
    S::decode(acc).ok_or_else(|| {
        let msg = format!("accumulator: cannot decode a state of {} bytes", acc.len());
        fail(w, Status::Failed, &msg)
    })
}

/// `aegis_aggregate`.
pub fn aggregate<A: Aggregate>(ptr: i32, len: i32, a: &mut A) -> i64 {
    let (w, input) = match start(ptr, len) {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    let (state, batch) = match abi::parse_state(input) {
        Ok(s) => s,
        Err(err) => return bad_input(w, err),
    };
    let mut s: A::State = match load(w, state.acc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let each = each_event(w, batch, |w, e| {
        if let Err(err) = a.add(&mut s, e) {
            w.add_error(e.index(), err.code(), err.message());
        }
    });
    if let Err(failed) = each {
        return failed;
    }
    s.encode(w.body());
    region(w.finish())
}

/// `aegis_merge`.
pub fn merge<A: Aggregate>(ptr: i32, len: i32, a: &mut A) -> i64 {
    let (w, input) = match start(ptr, len) {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    let (state, other) = match abi::parse_merge(input) {
        Ok(m) => m,
        Err(err) => return bad_input(w, err),
    };
    let mut s: A::State = match load(w, state.acc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t: A::State = match load(w, other) {
        Ok(s) => s,
        Err(r) => return r,
    };
    a.merge(&mut s, &t);
    s.encode(w.body());
    region(w.finish())
}

/// `aegis_finish`.
pub fn finish<A: Aggregate>(ptr: i32, len: i32, a: &mut A) -> i64 {
    let (w, input) = match start(ptr, len) {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    let (state, window) = match abi::parse_finish(input) {
        Ok(f) => f,
        Err(err) => return bad_input(w, err),
    };
    let key = match abi::utf8(state.key) {
        Some(k) => k,
        None => return fail(w, Status::BadInput, "state key is not UTF-8"),
    };
    let s: A::State = match load(w, state.acc) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut out = Output::new(w, 0);
    let err = match a.finish(key, &s, window, &mut out) {
        Ok(()) => out.take_err(),
        Err(err) => Some(err),
    };
    if let Some(err) = err {
        return fail(w, Status::Failed, err.message());
    }
    region(w.finish())
}
