/// A log level, as in Go's `log/slog`: other values are allowed and logged
/// as slog logs them (`Level(2)` is `INFO+2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level(pub i32);

impl Level {
    /// Debug.
    pub const DEBUG: Level = Level(-4);
    /// Info.
    pub const INFO: Level = Level(0);
    /// Warn.
    pub const WARN: Level = Level(4);
    /// Error.
    pub const ERROR: Level = Level(8);
}

#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "aegis")]
    extern "C" {
        #[link_name = "log"]
        pub fn aegis_log(level: i32, ptr: *const u8, len: usize);
    }
}

/// Sends a message to the host's log, tagged with the plugin, through the
/// `aegis.log` import. The host logs at most the first 4096 bytes. Every
/// call crosses into the host: do not log once per event on the hot path.
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads [ptr, ptr+len), which is msg.
    unsafe {
        host::aegis_log(level.0, msg.as_ptr(), msg.len())
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("aegis.log level={}: {}", level.0, msg);
}

/// Logs at debug level.
pub fn debug(msg: &str) {
    log(Level::DEBUG, msg)
}

/// Logs at info level.
pub fn info(msg: &str) {
    log(Level::INFO, msg)
}

/// Logs at warn level.
pub fn warn(msg: &str) {
    log(Level::WARN, msg)
}

/// Logs at error level.
pub fn error(msg: &str) {
    log(Level::ERROR, msg)
}
