use std::ptr::addr_of_mut;

use crate::json::{lookup, Json};

/// The step's configuration: the `with:` map of the step in the pipeline
/// manifest, as a JSON object (`{}` when it has none). A module receives it
/// once per instance, before the first batch, with the handler given to
/// [`plugin!`](crate::plugin) (`config: handler`); it stays available
/// through [`config`].
#[derive(Debug)]
pub struct Config {
    raw: Vec<u8>,
}

impl Config {
    /// The configuration as JSON text.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// One member of the configuration; a missing value if it has none.
    pub fn get(&self, key: &str) -> Json<'_> {
        lookup(&self.raw, key)
    }
}

static mut CONFIG: Option<&'static Config> = None;

/// Keeps a copy of the configuration (the input it came in is the host's)
/// for the rest of the instance's life.
pub(crate) fn store(raw: &[u8]) -> &'static Config {
    let c: &'static Config = Box::leak(Box::new(Config { raw: raw.to_vec() }));
    // SAFETY: the host never calls an instance concurrently. A previous
    // configuration, which the ABI never sends, stays allocated, so
    // references to it stay valid.
    unsafe { *addr_of_mut!(CONFIG) = Some(c) };
    c
}

/// The configuration the module received, once `aegis_init` has run with a
/// configuration handler registered; `None` before, or without one.
pub fn config() -> Option<&'static Config> {
    // SAFETY: as in store.
    unsafe { *addr_of_mut!(CONFIG) }
}
