use std::borrow::Cow;

use crate::abi::{utf8, ResultWriter, MAX_TYPE_LEN};
use crate::event::{Data, MetaIter};
use crate::Error;

/// An event that a map or an aggregate's finish emits.
///
/// A zero `id` asks the host for a new id; a zero `time` means the input
/// event's time (map) or the window's end (finish).
#[derive(Clone, Debug)]
pub struct OutEvent<'a> {
    /// The id, the 16 bytes of a UUID; all zero for a new one.
    pub id: [u8; 16],
    /// Nanoseconds since the Unix epoch; 0 for the default.
    pub time: i64,
    /// The type: 1 to 255 bytes, no white space or control characters
    /// (Unicode's, such as U+00A0 and U+0085, too).
    pub event_type: &'a str,
    /// The source; may be empty.
    pub source: &'a str,
    /// The data.
    pub data: Data<'a>,
    meta: Cow<'a, [u8]>,
    meta_count: u32,
}

impl<'a> OutEvent<'a> {
    /// A new event with no id, time or metadata.
    pub fn new(event_type: &'a str, source: &'a str, data: Data<'a>) -> Self {
        OutEvent {
            id: [0; 16],
            time: 0,
            event_type,
            source,
            data,
            meta: Cow::Borrowed(&[]),
            meta_count: 0,
        }
    }

    pub(crate) fn set_raw_meta(&mut self, meta: &'a [u8], count: u16) {
        self.meta = Cow::Borrowed(meta);
        self.meta_count = count as u32;
    }

    pub(crate) fn meta_bytes(&self) -> &[u8] {
        &self.meta
    }

    /// The number of metadata entries.
    pub fn meta_count(&self) -> u16 {
        self.meta_count as u16
    }

    /// The metadata entries.
    pub fn metadata(&self) -> MetaIter<'_> {
        MetaIter::new(&self.meta)
    }

    /// Sets a metadata entry, replacing one of the same key. (It copies the
    /// entries: cheap for the few an event has.)
    pub fn set_meta(&mut self, key: &str, value: &str) {
        let mut b = self.without(key);
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(&(value.len() as u32).to_le_bytes());
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(value.as_bytes());
        self.meta_count += 1;
        self.meta = Cow::Owned(b);
    }

    /// Removes a metadata entry.
    pub fn delete_meta(&mut self, key: &str) {
        let b = self.without(key);
        self.meta = Cow::Owned(b);
    }

    /// The entries without key, counted in meta_count.
    fn without(&mut self, key: &str) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.meta.len() + 16);
        let mut it = MetaIter::new(&self.meta);
        let mut n = 0;
        while let Some((k, v)) = it.next_raw() {
            if k != key.as_bytes() {
                b.extend_from_slice(&(k.len() as u32).to_le_bytes());
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
                b.extend_from_slice(k);
                b.extend_from_slice(v);
                n += 1;
            }
        }
        self.meta_count = n;
        b
    }

    /// Applies the host's rules for output events (ABI sections 7 and 9).
    fn check(&self) -> Result<(), Error> {
        let t = self.event_type.as_bytes();
        if t.is_empty() || t.len() > MAX_TYPE_LEN {
            return Err(Error::new(1, "output event type must be 1 to 255 bytes"));
        }
        // White space and control characters as the host sees them: Unicode's
        // White_Space and Cc (Go's unicode.IsSpace and IsControl).
        if t.iter().any(|&c| c <= b' ' || c == 0x7f)
            || (!t.is_ascii()
                && self
                    .event_type
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::new(
                1,
                "output event type contains white space or a control character",
            ));
        }
        match self.data {
            Data::Json(d) if utf8(d).is_none() => {
                return Err(Error::new(1, "output event data: JSON is not valid UTF-8"));
            }
            _ => {}
        }
        if self.meta_count > u16::MAX as u32 {
            return Err(Error::new(
                1,
                "output event has more than 65535 metadata entries",
            ));
        }
        let mut it = MetaIter::new(&self.meta);
        while let Some((k, v)) = it.next_raw() {
            if k.is_empty() || utf8(k).is_none() || utf8(v).is_none() {
                return Err(Error::new(
                    1,
                    "output event metadata: keys must be non-empty, keys and values UTF-8",
                ));
            }
        }
        Ok(())
    }
}

/// Collects the events a map or an aggregate's finish emits, straight into
/// the result.
pub struct Output<'w> {
    w: &'w mut ResultWriter,
    origin: u32,
    err: Option<Error>,
}

impl<'w> Output<'w> {
    pub(crate) fn new(w: &'w mut ResultWriter, origin: u32) -> Self {
        Output {
            w,
            origin,
            err: None,
        }
    }

    pub(crate) fn take_err(&mut self) -> Option<Error> {
        self.err.take()
    }

    /// Adds an output event; its bytes are copied at once. An event the
    /// host would refuse (a type that is empty, longer than 255 bytes or has
    /// white space or control characters; JSON that is not UTF-8; bad
    /// metadata) is not emitted: it fails the input event it came from (map)
    /// or the call (finish), with the reason, which is also returned.
    pub fn emit(&mut self, o: &OutEvent<'_>) -> Result<(), Error> {
        if let Err(e) = o.check() {
            if self.err.is_none() {
                self.err = Some(e.clone());
            }
            return Err(e);
        }
        self.w.push_record(self.origin, o);
        Ok(())
    }
}
