use crate::event::Event;
use crate::output::Output;
use crate::Error;

/// The event-time window an aggregate finishes: `[start, end)`, in
/// nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first instant of the window.
    pub start: i64,
    /// The first instant after the window.
    pub end: i64,
}

/// The state of an aggregate for one group and window, which the host keeps
/// between calls as bytes (the accumulator, ABI section 8), so that it
/// survives instance restarts and new versions of the module.
///
/// `Default` is the state of a group that has seen no events. An encoded
/// state must not be empty (the host reads an empty accumulator as "no
/// events yet"), and `decode` should read what older versions of the module
/// encoded.
///
/// Implemented for `i64`, `u64` and `f64` and arrays of 1 to 8 of them, as
/// little-endian bytes, back to back: the encoding Go's `encoding/binary`
/// gives a struct of such numbers, which the Go SDK uses by default.
pub trait Accumulator: Default {
    /// Appends the encoded state to `acc`.
    fn encode(&self, acc: &mut Vec<u8>);
    /// Decodes an accumulator that `encode` wrote; `None` fails the call.
    fn decode(acc: &[u8]) -> Option<Self>;
}

macro_rules! number_accumulators {
    ($($t:ty),*) => {$(
        impl Accumulator for $t {
            fn encode(&self, acc: &mut Vec<u8>) {
                acc.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(acc: &[u8]) -> Option<Self> {
                let mut b = [0u8; 8];
                if acc.len() != 8 {
                    return None;
                }
                b.copy_from_slice(acc);
                Some(<$t>::from_le_bytes(b))
            }
        }
        array_accumulators!($t; 1 2 3 4 5 6 7 8);
    )*};
}

macro_rules! array_accumulators {
    ($t:ty; $($n:literal)*) => {$(
        impl Accumulator for [$t; $n] {
            fn encode(&self, acc: &mut Vec<u8>) {
                for v in self {
                    acc.extend_from_slice(&v.to_le_bytes());
                }
            }
            fn decode(acc: &[u8]) -> Option<Self> {
                if acc.len() != 8 * $n {
                    return None;
                }
                let mut s = [<$t>::default(); $n];
                for (v, b) in s.iter_mut().zip(acc.chunks_exact(8)) {
                    *v = <$t as Accumulator>::decode(b)?;
                }
                Some(s)
            }
        }
    )*};
}

number_accumulators!(i64, u64, f64);

/// An aggregate step. The host groups and windows the events; the module
/// folds a group's events into its state, merges partial states, and turns
/// a state into output events when the window closes.
pub trait Aggregate {
    /// The state of one group and window.
    type State: Accumulator;

    /// Folds one event into `state`. An error fails that event alone, and
    /// `add` must then leave `state` as it was: the host discards failed
    /// events, and the state returned must not include them.
    fn add(&mut self, state: &mut Self::State, e: &Event<'_>) -> Result<(), Error>;

    /// Folds `other` into `state`: two partial states of one group and
    /// window, built from disjoint sets of events. The host may merge in any
    /// grouping, so merging must be associative.
    fn merge(&mut self, state: &mut Self::State, other: &Self::State);

    /// Emits the results of a group's window when it closes; also for a
    /// window that saw no events, with the default state. `key` is the group
    /// key, empty when the step is not grouped. An error, or an event that
    /// `emit` refuses, fails the call.
    fn finish(
        &mut self,
        key: &str,
        state: &Self::State,
        window: Window,
        out: &mut Output<'_>,
    ) -> Result<(), Error>;
}
