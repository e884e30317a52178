//! The Rust guest SDK for aegis-host plugins: the module side of the aegis
//! plugin ABI, version 1.0 (`abi/ABI.md` in the aegis repository), with the
//! standard library alone.
//!
//! A plugin is a `cdylib` built for `wasm32-wasi` that registers its step
//! with one macro:
//!
//! ```ignore
//! use aegis_sdk::Event;
//!
//! fn keep(e: &Event) -> bool {
//!     e.event_type() != "order.refunded"
//! }
//!
//! aegis_sdk::filter!(keep);
//! ```
//!
//! The macros ([`filter!`], [`map!`], [`aggregate!`], and [`plugin!`] for a
//! module with several kinds or a configuration) define the ABI exports with
//! the WebAssembly types the ABI requires. The SDK reads each batch the host
//! writes through views that copy nothing ([`Event`]), and writes results
//! into buffers it keeps from call to call, so that once they have grown a
//! call allocates nothing but what the plugin's own code does.
//!
//! Build plugins with `-C panic=abort`: a panic then ends in a WebAssembly
//! trap, and the host discards the instance and fails the batch (ABI
//! section 13). A module is never called concurrently, and the SDK relies on
//! it.

#![warn(missing_docs)]

pub mod abi;
mod aggregate;
mod config;
mod event;
mod json;
mod log;
mod output;

#[doc(hidden)]
pub mod __rt;

pub use aggregate::{Accumulator, Aggregate, Window};
pub use config::{config, Config};
pub use event::{Data, DataKind, Event, MetaIter};
pub use json::{append_string, lookup, members, Editor, Json};
pub use log::{debug, error, info, log, warn, Level};
pub use output::{OutEvent, Output};

use std::borrow::Cow;
use std::fmt;

/// The ABI version this SDK implements, `major << 16 | minor`: 1.0.
pub const ABI_VERSION: u32 = 0x0001_0000;

/// An error of the plugin's code: for one event (a filter, a map or an
/// aggregate's `add`), an event error with [`Error::code`] and the message,
/// which the host reports and does not interpret; for a whole call (a
/// configuration, an aggregate's `finish`), the message of the failed call.
///
/// Messages that are `&'static str` cost no allocation:
///
/// ```ignore
/// let amount = e.field("amount").as_f64().ok_or("amount is missing")?; // code 1
/// return Err(aegis_sdk::Error::new(7, "amount out of range"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    code: u32,
    message: Cow<'static, str>,
}

impl Error {
    /// An error with a code of the plugin's choosing.
    pub fn new(code: u32, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The code reported with a failed event: 1 unless given.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<&'static str> for Error {
    fn from(message: &'static str) -> Error {
        Error::new(1, message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(1, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({}, {:?})", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// A filter step: decides, event by event, which events go on.
///
/// Implemented by every function or closure `FnMut(&Event) -> bool` (an
/// event is kept or dropped) and `FnMut(&Event) -> Result<bool, Error>`
/// (an event may also fail, as an event error); implement it for a type of
/// your own to keep state between events.
pub trait Filter {
    /// Reports whether the event goes on. An error fails that event alone;
    /// dropped events are not errors.
    fn keep(&mut self, e: &Event<'_>) -> Result<bool, Error>;
}

/// What a filter function returns: `bool` or `Result<bool, Error>`.
pub trait Verdict {
    /// The verdict as a result.
    fn into_result(self) -> Result<bool, Error>;
}

impl Verdict for bool {
    fn into_result(self) -> Result<bool, Error> {
        Ok(self)
    }
}

impl Verdict for Result<bool, Error> {
    fn into_result(self) -> Result<bool, Error> {
        self
    }
}

impl<F, R> Filter for F
where
    F: FnMut(&Event<'_>) -> R,
    R: Verdict,
{
    fn keep(&mut self, e: &Event<'_>) -> Result<bool, Error> {
        self(e).into_result()
    }
}

/// A map step: turns each event into zero or more events.
///
/// Implemented by every function or closure
/// `FnMut(&Event, &mut Output) -> Result<(), Error>`; implement it for a type
/// of your own to keep buffers (an [`Editor`], say) from event to event.
pub trait Map {
    /// Emits the events that come of `e` to `out`. An error fails that event
    /// alone (what becomes of it is the step's error policy), and the host
    /// discards the events emitted for it.
    fn map(&mut self, e: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error>;
}

impl<F> Map for F
where
    F: FnMut(&Event<'_>, &mut Output<'_>) -> Result<(), Error>,
{
    fn map(&mut self, e: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        self(e, out)
    }
}

/// Registers a filter: a function `fn(&Event) -> bool` (or returning
/// `Result<bool, Error>`), or any expression whose value is a [`Filter`].
/// The expression is evaluated once per instance, before the first batch.
///
/// ```ignore
/// aegis_sdk::filter!(keep);
/// ```
#[macro_export]
macro_rules! filter {
    ($f:expr $(,)?) => {
        $crate::plugin! { filter: $f }
    };
}

/// Registers a map: a function `fn(&Event, &mut Output) -> Result<(), Error>`
/// or any expression whose value is a [`Map`], such as
/// `Enrich::default()`. The expression is evaluated once per instance,
/// before the first batch.
#[macro_export]
macro_rules! map {
    ($m:expr $(,)?) => {
        $crate::plugin! { map: $m }
    };
}

/// Registers an aggregate: an expression whose value is an [`Aggregate`],
/// such as `Totals::default()`. It is evaluated once per instance, before
/// the first call.
#[macro_export]
macro_rules! aggregate {
    ($a:expr $(,)?) => {
        $crate::plugin! { aggregate: $a }
    };
}

/// Defines the ABI exports of a module: the steps it implements, in any
/// order, each at most once, and optionally a configuration handler.
///
/// ```ignore
/// aegis_sdk::plugin! {
///     filter: keep,
///     map: Enrich::default(),
///     config: configure, // fn(&Config) -> Result<(), Error>
/// }
/// ```
///
/// Without `config`, the module accepts only an empty configuration (`{}`,
/// the default), like a Go plugin without `OnConfig`. Use one registration
/// macro per module: it defines the exports every module has
/// (`aegis_abi_version`, `aegis_alloc`, `aegis_kinds`, `aegis_init`, and
/// `_initialize` on wasm32) and those of each kind given (`aegis_filter`,
/// `aegis_map`, or `aegis_aggregate`, `aegis_merge` and `aegis_finish`);
/// `aegis_kinds` reports the kinds given.
#[macro_export]
macro_rules! plugin {
    // Sort the entries into [filter] [map] [aggregate] [config].
    (@sort [] [$($m:tt)*] [$($a:tt)*] [$($c:tt)*] filter: $x:expr $(, $($rest:tt)*)?) => {
        $crate::plugin! { @sort [$x] [$($m)*] [$($a)*] [$($c)*] $($($rest)*)? }
    };
    (@sort [$($f:tt)*] [] [$($a:tt)*] [$($c:tt)*] map: $x:expr $(, $($rest:tt)*)?) => {
        $crate::plugin! { @sort [$($f)*] [$x] [$($a)*] [$($c)*] $($($rest)*)? }
    };
    (@sort [$($f:tt)*] [$($m:tt)*] [] [$($c:tt)*] aggregate: $x:expr $(, $($rest:tt)*)?) => {
        $crate::plugin! { @sort [$($f)*] [$($m)*] [$x] [$($c)*] $($($rest)*)? }
    };
    (@sort [$($f:tt)*] [$($m:tt)*] [$($a:tt)*] [] config: $x:expr $(, $($rest:tt)*)?) => {
        $crate::plugin! { @sort [$($f)*] [$($m)*] [$($a)*] [$x] $($($rest)*)? }
    };
    (@sort [] [] [] [$($c:tt)*]) => {
        ::core::compile_error!("aegis_sdk::plugin!: give at least one of filter, map and aggregate");
    };
    (@sort [$($f:tt)*] [$($m:tt)*] [$($a:tt)*] [$($c:tt)*]) => {
        $crate::__plugin_common!(
            $crate::__plugin_bit!([$($f)*] 1) | $crate::__plugin_bit!([$($m)*] 2) | $crate::__plugin_bit!([$($a)*] 4),
            [$($c)*]
        );
        $crate::__plugin_filter!([$($f)*]);
        $crate::__plugin_map!([$($m)*]);
        $crate::__plugin_aggregate!([$($a)*]);
    };
    (@sort $($bad:tt)*) => {
        ::core::compile_error!(
            "aegis_sdk::plugin!: expected `filter: EXPR`, `map: EXPR`, `aggregate: EXPR` or `config: EXPR`, each at most once, separated by commas"
        );
    };
    ($($entries:tt)*) => {
        $crate::plugin! { @sort [] [] [] [] $($entries)* }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_bit {
    ([] $bit:expr) => {
        0
    };
    ([$x:expr] $bit:expr) => {
        $bit
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_common {
    ($kinds:expr, [$($config:expr)?]) => {
        /// WASI reactor initialisation, called by the host before anything
        /// else: runs the module's static constructors once. Calling them
        /// here also keeps the linker from wrapping every export in a call
        /// of the constructors and destructors.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            extern "C" {
                fn __wasm_call_ctors();
            }
            if $crate::__rt::first_initialize() {
                unsafe { __wasm_call_ctors() }
            }
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_abi_version() -> i32 {
            $crate::ABI_VERSION as i32
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_kinds() -> i32 {
            $kinds
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_alloc(size: i32) -> i32 {
            $crate::__rt::alloc(size)
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_init(ptr: i32, len: i32) -> i64 {
            $crate::__rt::init(ptr, len, $crate::__plugin_config!([$($config)?]))
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_config {
    ([]) => {
        ::core::option::Option::None::<
            fn(&$crate::Config) -> ::core::result::Result<(), $crate::Error>,
        >
    };
    ([$config:expr]) => {
        ::core::option::Option::Some($config)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_filter {
    ([]) => {};
    ([$f:expr]) => {
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_filter(ptr: i32, len: i32) -> i64 {
            static mut SLOT: *mut u8 = ::core::ptr::null_mut();
            // SAFETY: SLOT is this call site's alone, and the host never
            // calls an instance concurrently.
            let f = unsafe { $crate::__rt::slot(&mut *::core::ptr::addr_of_mut!(SLOT), || $f) };
            $crate::__rt::filter(ptr, len, f)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_map {
    ([]) => {};
    ([$m:expr]) => {
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_map(ptr: i32, len: i32) -> i64 {
            static mut SLOT: *mut u8 = ::core::ptr::null_mut();
            // SAFETY: as for aegis_filter.
            let m = unsafe { $crate::__rt::slot(&mut *::core::ptr::addr_of_mut!(SLOT), || $m) };
            $crate::__rt::map(ptr, len, m)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_aggregate {
    ([]) => {};
    ([$a:expr]) => {
        fn __aegis_aggregate_impl() -> &'static mut impl $crate::Aggregate {
            static mut SLOT: *mut u8 = ::core::ptr::null_mut();
            // SAFETY: SLOT is this function's alone, the three exports use
            // what it returns only during their call, and the host never
            // calls an instance concurrently.
            unsafe { $crate::__rt::slot(&mut *::core::ptr::addr_of_mut!(SLOT), || $a) }
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_aggregate(ptr: i32, len: i32) -> i64 {
            $crate::__rt::aggregate(ptr, len, __aegis_aggregate_impl())
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_merge(ptr: i32, len: i32) -> i64 {
            $crate::__rt::merge(ptr, len, __aegis_aggregate_impl())
        }

        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn aegis_finish(ptr: i32, len: i32) -> i64 {
            $crate::__rt::finish(ptr, len, __aegis_aggregate_impl())
        }
    };
}
