//! Golden vectors pinning the record encoding, digests and links, and records
//! the decoder must refuse. Regenerate (only on a deliberate format change) with
//! `HISN_REGEN_VECTORS=1 cargo test -p hisn-audit-log --test suite golden`.

use hisn_audit_log::{Link, Timestamp, chain_link, decode_record, encode_record, record_digest};

use crate::common::*;

const PASS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/hisn_record_v1_pass.json"
);
const FAIL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/hisn_record_v1_fail.json"
);

fn vectors() -> serde_json::Value {
    let t = tenant("acme");
    let c = clock();
    let at = Timestamp::from_unix_micros(1_764_000_000_123_456);
    let events = [
        hisn_audit_log::Event::builder(&t, "u-1", "auth.login")
            .at(at)
            .build(&c)
            .unwrap(),
        event(&t, 1),
        event(&t, 2),
        hisn_audit_log::Event::escape_hatch(&t, "ops", "unscoped", "incident 42 \u{0639}")
            .at(at)
            .build(&c)
            .unwrap(),
        hisn_audit_log::Event::builder(&t, "u-2", "x")
            .source_ip("2001:db8::1".parse().unwrap())
            .at(at)
            .build(&c)
            .unwrap(),
    ];
    let mut prev = Link::GENESIS;
    let mut out = Vec::new();
    for (seq, e) in events.iter().enumerate() {
        let seq = seq as u64;
        let record = encode_record(seq, e).unwrap();
        let digest = record_digest(&record);
        let link = chain_link(b"acme", seq, &prev, &digest);
        out.push(serde_json::json!({
            "seq": seq, "event": e.to_json(), "record": hex::encode(&record),
            "digest": digest.to_hex(), "prev_link": prev.to_hex(), "link": link.to_hex(),
        }));
        prev = link;
    }
    serde_json::json!({ "source": "hisn-audit-log record format v1", "vectors": out })
}

#[test]
fn pass_vectors_match() {
    let now = vectors();
    if std::env::var("HISN_REGEN_VECTORS").is_ok() {
        std::fs::write(PASS, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
    }
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(PASS).unwrap()).unwrap();
    assert_eq!(
        stored, now,
        "record encoding changed: bump RECORD_VERSION instead"
    );
    for v in stored["vectors"].as_array().unwrap() {
        let bytes = hex::decode(v["record"].as_str().unwrap()).unwrap();
        let (seq, e) = decode_record(&bytes).unwrap();
        assert_eq!(seq, v["seq"].as_u64().unwrap());
        assert_eq!(e.to_json(), v["event"]);
        let prev = Link::from_hex(v["prev_link"].as_str().unwrap()).unwrap();
        assert_eq!(
            chain_link(b"acme", seq, &prev, &record_digest(&bytes)).to_hex(),
            v["link"].as_str().unwrap()
        );
    }
}

#[test]
fn fail_vectors_are_refused() {
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FAIL).unwrap()).unwrap();
    let cases = stored["vectors"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for v in cases {
        let bytes = hex::decode(v["record"].as_str().unwrap()).unwrap();
        assert!(decode_record(&bytes).is_err(), "{}", v["why"]);
    }
}
