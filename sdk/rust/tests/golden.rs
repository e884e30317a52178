//! The SDK against the ABI's golden vectors (abi/testdata, described in its
//! README), both ways, and its JSON helpers. They run natively:
//!
//!     cargo test                         (in sdk/rust)
//!
//! or without cargo:
//!
//!     rustc --edition 2021 --crate-type rlib --crate-name aegis_sdk src/lib.rs -o OUT/libaegis_sdk.rlib
//!     rustc --edition 2021 --test --extern aegis_sdk=OUT/libaegis_sdk.rlib -L OUT tests/golden.rs -o OUT/golden
//!     OUT/golden

use aegis_sdk::abi::{self, records, split_record, ResultWriter, Status};
use aegis_sdk::{lookup, members, Data, DataKind, Editor, Json, OutEvent};

const T0: i64 = 1_700_000_000_000_000_000;

macro_rules! golden {
    ($name:literal) => {
        &include_bytes!(concat!("../../../abi/testdata/", $name))[..]
    };
}

fn id(i: u8) -> [u8; 16] {
    let mut id = [0u8; 16];
    for (j, b) in id.iter_mut().enumerate() {
        *b = 16 * i + j as u8;
    }
    id
}

/// Re-encodes the records of a batch from their views.
fn reencode(batch: &[u8]) -> Vec<u8> {
    let mut out = batch[..4].to_vec();
    for e in records(batch) {
        let e = e.unwrap();
        abi::append_record(&mut out, e.index(), &e.to_out());
    }
    out
}

#[test]
fn record_small() {
    let b = golden!("record_small.bin");
    let (e, rest) = split_record(b).unwrap();
    assert!(rest.is_empty());
    assert_eq!(e.index(), 1);
    assert_eq!(e.id(), id(0));
    assert_eq!(e.time(), T0);
    assert_eq!(e.kind(), DataKind::Int);
    assert_eq!(e.int(), Some(42));
    assert_eq!(e.event_type(), "tick");
    assert_eq!(e.source(), "s");
    assert_eq!(e.metadata().collect::<Vec<_>>(), vec![("k", "v")]);
    assert_eq!(e.meta("k"), Some("v"));
    assert_eq!(e.meta("v"), None);

    let mut out = Vec::new();
    abi::append_record(&mut out, 1, &e.to_out());
    assert_eq!(out, b);
}

#[test]
fn batch_empty() {
    let b = golden!("batch_empty.bin");
    assert_eq!(records(b).count(), 0);
    assert_eq!(reencode(b), b);
}

#[test]
fn batch_kinds() {
    let b = golden!("batch_kinds.bin");
    let evs: Vec<_> = records(b).map(Result::unwrap).collect();
    assert_eq!(evs.len(), 7);
    let want = [
        ("kind.null", Data::Null),
        ("kind.bool", Data::Bool(true)),
        ("kind.int", Data::Int(-2)),
        ("kind.float", Data::Float(-1.5)),
        ("kind.string", Data::String("héllo, 世界 🌍")),
        (
            "kind.bytes",
            Data::Bytes(&[0x00, 0xff, 0x01, 0xfe, 0x80, 0x7f]),
        ),
        (
            "kind.json",
            Data::Json(r#"{"a":[1,2.5,"ü"],"b":null}"#.as_bytes()),
        ),
    ];
    for (i, (e, (ty, data))) in evs.iter().zip(want.iter()).enumerate() {
        assert_eq!(e.index(), i as u32);
        assert_eq!(e.id(), id(i as u8));
        assert_eq!(e.time(), T0 + i as i64);
        assert_eq!(e.event_type(), *ty);
        assert_eq!(e.source(), "urn:aegis:test");
        assert_eq!(e.value(), *data);
        assert_eq!(e.kind(), data.kind());
        assert_eq!(e.meta_count(), 0);
    }
    assert_eq!(evs[6].field("a").raw(), r#"[1,2.5,"ü"]"#.as_bytes());
    assert!(evs[6].field("b").is_null());
    assert!(!evs[4].field("a").exists());
    assert_eq!(reencode(b), b);
}

#[test]
fn batch_meta() {
    let b = golden!("batch_meta.bin");
    let evs: Vec<_> = records(b).map(Result::unwrap).collect();
    assert_eq!(evs.len(), 3);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.event_type(), "order.created");
        assert_eq!(e.source(), "");
        assert_eq!(e.int(), Some(i as i64));
    }
    assert_eq!(evs[0].metadata().count(), 0);
    assert_eq!(
        evs[1].metadata().collect::<Vec<_>>(),
        vec![(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )]
    );
    assert_eq!(
        evs[2].metadata().collect::<Vec<_>>(),
        vec![("région", "Île-de-France"), ("empty", "")]
    );
    assert_eq!(reencode(b), b);
}

#[test]
fn result_filter() {
    let mut w = ResultWriter::new();
    w.reset();
    w.push_index(0);
    w.push_index(2);
    w.add_error(1, 7, "amount missing");
    assert_eq!(w.finish(), golden!("result_filter.bin"));
}

#[test]
fn result_map() {
    let mut w = ResultWriter::new();
    w.reset();
    w.push_record(0, &OutEvent::new("order.enriched", "", Data::String("A")));
    let mut o = OutEvent::new(
        "order.enriched",
        "urn:aegis:enrich",
        Data::Json(br#"{"ok":true}"#),
    );
    o.id = id(2);
    o.time = T0 + 5;
    o.set_meta("tenant", "acme");
    w.push_record(1, &o);
    assert_eq!(w.finish(), golden!("result_map.bin"));
}

#[test]
fn result_aggregate() {
    let mut w = ResultWriter::new();
    w.reset();
    w.body().extend_from_slice(&12i64.to_le_bytes());
    w.add_error(0, 2, "not a number");
    assert_eq!(w.finish(), golden!("result_aggregate.bin"));
}

#[test]
fn result_failed() {
    let mut w = ResultWriter::new();
    w.reset();
    w.push_index(3);
    w.add_error(0, 1, "discarded");
    assert_eq!(
        w.fail(Status::Failed, "lookup failed: café ☕"),
        golden!("result_failed.bin")
    );
    // And the writer starts afresh after.
    w.reset();
    assert_eq!(w.finish(), &[0u8; 12][..]);
}

#[test]
fn input_aggregate() {
    let (state, batch) = abi::parse_state(golden!("input_aggregate.bin")).unwrap();
    assert_eq!(state.key, b"eu-west");
    assert_eq!(state.acc, 5i64.to_le_bytes());
    let evs: Vec<_> = records(batch).map(Result::unwrap).collect();
    assert_eq!(evs.len(), 2);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(
            (e.index(), e.id(), e.time()),
            (i as u32, id(i as u8), T0 + i as i64)
        );
        assert_eq!(
            (e.event_type(), e.source(), e.int()),
            ("sale", "shop", Some(3 + i as i64))
        );
    }
}

#[test]
fn input_merge() {
    let (state, b) = abi::parse_merge(golden!("input_merge.bin")).unwrap();
    assert_eq!(state.key, b"");
    assert_eq!(state.acc, 5i64.to_le_bytes());
    assert_eq!(b, 7i64.to_le_bytes());
}

#[test]
fn input_finish() {
    let (state, w) = abi::parse_finish(golden!("input_finish.bin")).unwrap();
    assert_eq!(state.key, b"eu-west");
    assert!(state.acc.is_empty());
    assert_eq!((w.start, w.end), (T0, T0 + 60_000_000_000));
}

#[test]
fn bad_batches() {
    let rec = golden!("record_small.bin");
    let batch = |count: u32, parts: &[&[u8]]| {
        let mut b = count.to_le_bytes().to_vec();
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    };
    let patched = |off: usize, v: u32| {
        let mut r = rec.to_vec();
        r[off..off + 4].copy_from_slice(&v.to_le_bytes());
        r
    };
    let fails = |b: &[u8]| records(b).any(|r| r.is_err());
    assert!(!fails(&batch(1, &[rec])));
    assert!(fails(&[0, 0]));
    assert!(fails(&batch(2, &[rec])));
    assert!(fails(&batch(1, &[rec, &[0]])));
    assert!(fails(&batch(1, &[&patched(0, 47)])));
    assert!(fails(&batch(1, &[&patched(0, 1000)])));
    assert!(fails(&batch(1, &[&patched(40, u32::MAX)])));
    assert!(fails(&batch(1, &[&patched(44, 100)])));
    let mut bad_kind = rec.to_vec();
    bad_kind[32] = 7;
    assert!(fails(&batch(1, &[&bad_kind])));
    let mut bad_type = rec.to_vec();
    bad_type[48] = 0xff;
    assert!(fails(&batch(1, &[&bad_type])));
}

#[test]
fn json_lookup() {
    let doc = br#" { "a" : 1 , "b":"x\"y", "c":{"a":2}, "\u0064":true, "e":[1,{"f":"}"}], "a":3, "g":-1.5e3 } "#;
    assert_eq!(lookup(doc, "a").raw(), b"1");
    assert_eq!(lookup(doc, "a").as_i64(), Some(1));
    assert_eq!(lookup(doc, "b").as_str().as_deref(), Some("x\"y"));
    assert_eq!(lookup(doc, "c").get("a").as_i64(), Some(2));
    assert_eq!(lookup(doc, "d").as_bool(), Some(true));
    assert_eq!(lookup(doc, "e").raw(), br#"[1,{"f":"}"}]"#);
    assert_eq!(lookup(doc, "g").as_f64(), Some(-1500.0));
    assert_eq!(lookup(doc, "g").as_i64(), None);
    assert!(!lookup(doc, "f").exists());
    assert!(!lookup(b"[1]", "a").exists());
    assert!(!lookup(b"", "a").exists());
    assert!(!lookup(br#"{"a":"#, "a").exists());
    assert_eq!(lookup(br#"{"\n":1, "\\n":2}"#, "\n").raw(), b"1");
    assert_eq!(lookup(br#"{"\n":1, "\\n":2}"#, "\\n").raw(), b"2");
    assert_eq!(
        Json::new(br#" "\ud83d\ude00 \u00e9 \ud800" "#)
            .as_str()
            .as_deref(),
        Some("😀 é \u{fffd}")
    );
    assert_eq!(Json::new(b"1e400").as_f64(), None);
    assert_eq!(Json::new(b"1e-400").as_f64(), Some(0.0));
    assert_eq!(Json::new(b"9223372036854775808").as_i64(), None);
    assert_eq!(Json::new(b"-9223372036854775808").as_i64(), Some(i64::MIN));
    for bad in [
        &b"01"[..],
        b"1.",
        b".5",
        b"+1",
        b"1e",
        b"-",
        b"inf",
        b"NaN",
        b"0x10",
        b"1_0",
    ] {
        assert_eq!(
            Json::new(bad).as_f64(),
            None,
            "{:?}",
            std::str::from_utf8(bad)
        );
    }

    let mut n = 0;
    assert!(members(doc, |_, _| {
        n += 1;
        true
    }));
    assert_eq!(n, 7);
    assert!(members(b"{}", |_, _| false));
    for bad in [
        &b"{"[..],
        b"{\"a\"}",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"{\"a\":1 \"b\":2}",
        b"[]",
        b"{\"a\":\"x}",
    ] {
        assert!(!members(bad, |_, _| true), "{:?}", std::str::from_utf8(bad));
    }
}

/// A document, edits, and the exact output.
type EditCase = (&'static [u8], fn(&mut Editor), &'static str);

#[test]
fn json_editor() {
    let mut ed = Editor::new();
    let cases: &[EditCase] = &[
        (b"{}", |_| {}, "{}"),
        (br#"{"a":1,"b":[1,2]}"#, |_| {}, r#"{"a":1,"b":[1,2]}"#),
        (
            br#"{"a":1,"b":2,"c":3}"#,
            |ed| {
                ed.set_str("b", "two");
            },
            r#"{"a":1,"b":"two","c":3}"#,
        ),
        (
            br#"{"a":1}"#,
            |ed| {
                ed.set_str("z", "x").set_bool("y", true).set_i64("m", -3);
            },
            r#"{"a":1,"z":"x","y":true,"m":-3}"#,
        ),
        (
            br#"{"a":1,"b":2,"c":3}"#,
            |ed| {
                ed.delete("b").delete("x");
            },
            r#"{"a":1,"c":3}"#,
        ),
        (
            br#"{"a":1,"a":2}"#,
            |ed| {
                ed.set_i64("a", 9);
            },
            r#"{"a":9,"a":2}"#,
        ),
        (
            br#"{"a":1}"#,
            |ed| {
                ed.set_i64("n", 1)
                    .set_i64("a", 2)
                    .set_i64("n", 3)
                    .delete("a");
            },
            r#"{"n":3}"#,
        ),
        (
            br#"{"\u0061":1}"#,
            |ed| {
                ed.set_raw("a", br#"{"x":[]}"#);
            },
            r#"{"\u0061":{"x":[]}}"#,
        ),
        (
            b" {\n \"a\" : 1 ,\t\"b\" : [1, 2] } ",
            |ed| {
                ed.set_f64("f", 1234567.0)
                    .set_f64("g", 0.0001)
                    .set_f64("h", 1.5e-7)
                    .set_f64("i", f64::NAN)
                    .set_f64("j", 100.0);
            },
            r#"{"a":1,"b":[1, 2],"f":1.234567e+06,"g":0.0001,"h":1.5e-07,"i":null,"j":100}"#,
        ),
        (
            br#"{}"#,
            |ed| {
                ed.set_str("s", "q\"b\\n\n\u{1}\u{2028}é")
                    .set_i64("min", i64::MIN);
            },
            r#"{"s":"q\"b\\n\n\u0001\u2028é","min":-9223372036854775808}"#,
        ),
    ];
    for (doc, edits, want) in cases {
        ed.reset();
        edits(&mut ed);
        let got = ed.apply(doc).map(|d| d.to_vec());
        assert_eq!(
            got.as_deref(),
            Some(want.as_bytes()),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
    for bad in [&b"[]"[..], b"1", b"", b"{\"a\":1"] {
        assert!(ed.reset().set_i64("a", 1).apply(bad).is_none());
    }
}

#[test]
fn utf8_like_std() {
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"plain ascii, longer than eight bytes".to_vec(),
        "héllo, 世界 🌍 \u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}\u{d7ff}\u{e000}"
            .as_bytes()
            .to_vec(),
    ];
    // Every 1-, 2-, 3- and 4-byte sequence from a few interesting bytes,
    // alone and after an ASCII prefix.
    let interesting = [
        0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1,
        0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
    ];
    for &a in &interesting {
        cases.push(vec![a]);
        for &b in &interesting {
            cases.push(vec![a, b]);
            for &c in &interesting {
                cases.push(vec![a, b, c]);
                for &d in &interesting {
                    cases.push(vec![a, b, c, d]);
                    cases.push([&b"0123456789"[..], &[a, b, c, d], b"xyz"].concat());
                }
            }
        }
    }
    // And pseudo-random mixes of valid characters and stray bytes, of every
    // length up to 48, so that characters straddle 8-byte words.
    let alphabet: [&[u8]; 12] = [
        b"a",
        b"0123456",
        "é".as_bytes(),
        "世".as_bytes(),
        "🌍".as_bytes(),
        "\u{10ffff}".as_bytes(),
        &[0x80],
        &[0xc3],
        &[0xe4, 0xb8],
        &[0xf0, 0x9f, 0x8c],
        &[0xed, 0xa0, 0x80],
        &[0xff],
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..200_000 {
        let mut c = Vec::new();
        while c.len() < round % 49 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly valid characters, now and then a stray byte.
            let k = (x % 64) as usize;
            c.extend_from_slice(alphabet[if k < 60 { k % 6 } else { 6 + k % 6 }]);
        }
        cases.push(c);
    }
    for c in &cases {
        assert_eq!(abi::utf8(c), std::str::from_utf8(c).ok(), "{:x?}", c);
    }
}
