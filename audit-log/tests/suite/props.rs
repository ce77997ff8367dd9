//! Property tests: encoding round trip, every single mutation detected, DSAR
//! report equals a full-scan filter.

use hisn_audit_log::{
    AuditRead, Event, Link, MemoryStore, TenantId, Timestamp, Verdict, decode_record, encode_record,
};
use proptest::prelude::*;

use crate::common::*;

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 ._\\-\u{0600}-\u{06ff}]{{1,{max}}}"))
        .unwrap()
}

prop_compose! {
    fn arb_event()(
        tenant in "[a-z0-9._-]{1,16}",
        actor in text(20),
        action in text(20),
        entity in proptest::option::of((text(10), text(10))),
        subjects in proptest::collection::btree_set(text(8), 0..4),
        states in proptest::option::of((text(6), text(6))),
        diff in proptest::option::of(proptest::collection::btree_map(text(5), -(1i64 << 53)..=(1i64 << 53), 0..4)),
        ip in proptest::option::of(any::<[u8; 16]>()),
        v4 in any::<bool>(),
        req in proptest::option::of(text(12)),
        time in any::<i64>(),
    ) -> Event {
        let t = TenantId::parse(&tenant).unwrap();
        let mut b = Event::builder(&t, &actor, &action).subjects(subjects.iter().map(String::as_str)).at(Timestamp::from_unix_micros(time));
        if let Some((ty, id)) = &entity { b = b.entity(ty, id); }
        if let Some((f, to)) = &states { b = b.transition(f, to); }
        if let Some(d) = &diff { b = b.diff(&serde_json::to_value(d).unwrap()); }
        if let Some(ip) = ip {
            let addr: std::net::IpAddr = if v4 { std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into() } else { std::net::Ipv6Addr::from(ip).into() };
            b = b.source_ip(addr);
        }
        if let Some(r) = &req { b = b.request_id(r); }
        b.build(&clock()).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoding_round_trips(e in arb_event(), seq in any::<u64>()) {
        let bytes = encode_record(seq, &e).unwrap();
        let (s2, e2) = decode_record(&bytes).unwrap();
        prop_assert_eq!(s2, seq);
        prop_assert_eq!(&e2, &e);
        prop_assert_eq!(encode_record(s2, &e2).unwrap(), bytes);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_record(&bytes);
    }

    #[test]
    fn any_single_mutation_is_detected(
        n in 1u64..12,
        pick in any::<proptest::sample::Index>(),
        pos in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
        in_link in any::<bool>(),
    ) {
        let s = MemoryStore::new();
        let t = tenant("acme");
        for i in 0..n {
            s.append(&event(&t, i)).unwrap();
        }
        let mut recs = s.records(&t);
        let i = pick.index(recs.len());
        if in_link {
            recs[i].link.0[pos.index(32)] ^= flip;
        } else {
            let len = recs[i].bytes.len();
            recs[i].bytes[pos.index(len)] ^= flip;
        }
        s.replace_records(&t, 0, Link::GENESIS, recs);
        let r = s.verify(&t, None, &[]).unwrap();
        prop_assert_eq!(r.verdict, Verdict::Tampered);
        prop_assert_eq!(r.seq, Some(i as u64));
    }

    #[test]
    fn subject_report_equals_full_scan(
        subjects in proptest::collection::vec(proptest::collection::btree_set(0u8..6, 0..3), 1..40),
        probe in 0u8..6,
    ) {
        let s = MemoryStore::new();
        let t = tenant("acme");
        for (i, subs) in subjects.iter().enumerate() {
            let names: Vec<String> = subs.iter().map(|x| format!("p-{x}")).collect();
            let e = Event::builder(&t, "u", "a").subjects(names.iter().map(String::as_str)).at(Timestamp::from_unix_micros(i as i64)).build(&clock()).unwrap();
            s.append(&e).unwrap();
        }
        let subject = format!("p-{probe}");
        let report = s.subject_report(&t, &subject, None).unwrap();
        let got: Vec<u64> = report.entries.iter().map(|e| e.seq).collect();
        let want: Vec<u64> = s.records(&t).iter()
            .filter(|r| decode_record(&r.bytes).unwrap().1.subjects().contains(&subject))
            .map(|r| r.seq).collect();
        prop_assert_eq!(got, want);
        prop_assert!(report.entries.iter().all(|e| e.event.subjects().contains(&subject)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any integer beyond ±2^53 in a diff is refused (canonicalisation would
    /// round it); any within is kept exactly through encode and decode.
    #[test]
    fn diff_integers_are_kept_exactly_or_refused(n in any::<i64>()) {
        let t = tenant("acme");
        let r = Event::builder(&t, "u", "a").diff(&serde_json::json!({ "n": n })).build(&clock());
        if n.unsigned_abs() > 1u64 << 53 {
            prop_assert!(matches!(r, Err(hisn_audit_log::Error::InvalidDiff)));
        } else {
            let e = r.unwrap();
            let (_, back) = decode_record(&hisn_audit_log::encode_record(0, &e).unwrap()).unwrap();
            let v: serde_json::Value = serde_json::from_str(back.diff().unwrap()).unwrap();
            prop_assert_eq!(v["n"].as_i64(), Some(n));
        }
    }
}
