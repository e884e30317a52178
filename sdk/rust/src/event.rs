use crate::abi::{read_i64, read_u32, utf8};
use crate::json::{lookup, Json};
use crate::output::OutEvent;

/// The kind of an event's data (ABI section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DataKind {
    /// No data.
    Null = 0,
    /// A boolean, 1 byte.
    Bool = 1,
    /// An i64, 8 bytes little-endian.
    Int = 2,
    /// An f64, 8 bytes little-endian.
    Float = 3,
    /// UTF-8 text.
    String = 4,
    /// Any bytes.
    Bytes = 5,
    /// One JSON value, UTF-8.
    Json = 6,
}

impl DataKind {
    /// The kind of a Kind byte, if it is one.
    #[inline]
    pub fn from_u8(k: u8) -> Option<DataKind> {
        Some(match k {
            0 => DataKind::Null,
            1 => DataKind::Bool,
            2 => DataKind::Int,
            3 => DataKind::Float,
            4 => DataKind::String,
            5 => DataKind::Bytes,
            6 => DataKind::Json,
            _ => return None,
        })
    }
}

/// An event's data, decoded by kind. Text, bytes and JSON borrow the bytes
/// they were given (an input event's, or a buffer of the plugin's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Data<'a> {
    /// No data.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (any bit pattern).
    Float(f64),
    /// Text.
    String(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
    /// A JSON document, as its UTF-8 text. The host checks that output JSON
    /// is well formed.
    Json(&'a [u8]),
}

impl<'a> Data<'a> {
    /// The kind of the data.
    #[inline]
    pub fn kind(&self) -> DataKind {
        match self {
            Data::Null => DataKind::Null,
            Data::Bool(_) => DataKind::Bool,
            Data::Int(_) => DataKind::Int,
            Data::Float(_) => DataKind::Float,
            Data::String(_) => DataKind::String,
            Data::Bytes(_) => DataKind::Bytes,
            Data::Json(_) => DataKind::Json,
        }
    }
}

/// A read-only view of one input event. It copies nothing: it and what its
/// methods return borrow the input the host wrote, which is valid for the
/// call that received the event; copy what must outlive it (`to_owned`).
#[derive(Clone, Copy)]
pub struct Event<'a> {
    head: &'a [u8],
    ty: &'a str,
    source: &'a str,
    data: &'a [u8],
    meta: &'a [u8],
}

impl<'a> Event<'a> {
    #[inline]
    pub(crate) fn from_parts(
        head: &'a [u8],
        ty: &'a str,
        source: &'a str,
        data: &'a [u8],
        meta: &'a [u8],
    ) -> Self {
        Event {
            head,
            ty,
            source,
            data,
            meta,
        }
    }

    /// The event's position in its batch.
    #[inline]
    pub fn index(&self) -> u32 {
        read_u32(self.head, 4)
    }

    /// The event's id, the 16 bytes of a UUID; all zero for none.
    #[inline]
    pub fn id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.head[8..24]);
        id
    }

    /// When the event happened, in nanoseconds since the Unix epoch; 0 when
    /// unset.
    #[inline]
    pub fn time(&self) -> i64 {
        read_i64(self.head, 24)
    }

    /// The event's type, such as `order.created`.
    #[inline]
    pub fn event_type(&self) -> &'a str {
        self.ty
    }

    /// Where the event happened; may be empty.
    #[inline]
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// The kind of the event's data.
    #[inline]
    pub fn kind(&self) -> DataKind {
        // Checked when the record was split.
        DataKind::from_u8(self.head[32]).unwrap_or(DataKind::Bytes)
    }

    /// The data as encoded: the JSON text for JSON, UTF-8 for a string, 8
    /// little-endian bytes for a number.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The data, decoded by kind. Text that is not UTF-8 or a number of the
    /// wrong length, which a conforming host never sends, comes as bytes.
    #[inline]
    pub fn value(&self) -> Data<'a> {
        let d = self.data;
        match self.kind() {
            DataKind::Null => Data::Null,
            DataKind::Bool if d.len() == 1 => Data::Bool(d[0] == 1),
            DataKind::Int if d.len() == 8 => Data::Int(read_i64(d, 0)),
            DataKind::Float if d.len() == 8 => Data::Float(f64::from_bits(read_i64(d, 0) as u64)),
            DataKind::String => match utf8(d) {
                Some(s) => Data::String(s),
                None => Data::Bytes(d),
            },
            DataKind::Json => Data::Json(d),
            _ => Data::Bytes(d),
        }
    }

    /// Int data.
    #[inline]
    pub fn int(&self) -> Option<i64> {
        match self.value() {
            Data::Int(v) => Some(v),
            _ => None,
        }
    }

    /// Float data.
    #[inline]
    pub fn float(&self) -> Option<f64> {
        match self.value() {
            Data::Float(v) => Some(v),
            _ => None,
        }
    }

    /// Bool data.
    #[inline]
    pub fn bool(&self) -> Option<bool> {
        match self.value() {
            Data::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// String data.
    #[inline]
    pub fn text(&self) -> Option<&'a str> {
        match self.value() {
            Data::String(v) => Some(v),
            _ => None,
        }
    }

    /// The whole JSON document; a missing value when the data is not JSON.
    #[inline]
    pub fn json(&self) -> Json<'a> {
        if self.kind() != DataKind::Json {
            return Json::missing();
        }
        Json::new(self.data)
    }

    /// The top-level member `name` of JSON data, found without decoding the
    /// document; a missing value when the data is not JSON, not an object,
    /// or has no such member.
    #[inline]
    pub fn field(&self, name: &str) -> Json<'a> {
        if self.kind() != DataKind::Json {
            return Json::missing();
        }
        lookup(self.data, name)
    }

    /// The value of a metadata entry.
    pub fn meta(&self, key: &str) -> Option<&'a str> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The metadata entries, in their order (which has no meaning).
    pub fn metadata(&self) -> MetaIter<'a> {
        MetaIter { rest: self.meta }
    }

    /// The number of metadata entries.
    #[inline]
    pub fn meta_count(&self) -> u16 {
        u16::from_le_bytes([self.head[34], self.head[35]])
    }

    /// An output event that starts as a copy of this one (id, time, type,
    /// source, data and metadata), to change and [emit](crate::Output::emit).
    /// Like the event, it borrows the input.
    pub fn to_out(&self) -> OutEvent<'a> {
        let mut o = OutEvent::new(self.ty, self.source, self.value());
        o.id = self.id();
        o.time = self.time();
        o.set_raw_meta(self.meta, self.meta_count());
        o
    }
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("index", &self.index())
            .field("type", &self.ty)
            .field("source", &self.source)
            .field("time", &self.time())
            .field("data", &self.value())
            .finish()
    }
}

/// The metadata entries of an event, as `(key, value)` pairs.
#[derive(Clone)]
pub struct MetaIter<'a> {
    rest: &'a [u8],
}

impl<'a> MetaIter<'a> {
    /// Encoded entries: u32 key length, u32 value length, key, value.
    pub(crate) fn new(rest: &'a [u8]) -> Self {
        MetaIter { rest }
    }

    /// The next entry as bytes, whatever they hold.
    pub(crate) fn next_raw(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let m = self.rest;
        if m.len() < 8 {
            return None;
        }
        let kl = read_u32(m, 0) as u64;
        let vl = read_u32(m, 4) as u64;
        if 8 + kl + vl > m.len() as u64 {
            self.rest = &[];
            return None;
        }
        let (kl, vl) = (kl as usize, vl as usize);
        self.rest = &m[8 + kl + vl..];
        Some((&m[8..8 + kl], &m[8 + kl..8 + kl + vl]))
    }
}

impl<'a> Iterator for MetaIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // The host sends UTF-8 keys and values; an entry that is not (which
        // a conforming host never sends) is skipped.
        while let Some((k, v)) = self.next_raw() {
            if let (Some(k), Some(v)) = (utf8(k), utf8(v)) {
                return Some((k, v));
            }
        }
        None
    }
}
