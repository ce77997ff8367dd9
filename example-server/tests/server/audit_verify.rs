//! `GET /t/{tenant}/audit` verifies the chain at a bounded cost per call
//! (`src/audit/verified.rs`): only the records appended since the last call,
//! the whole chain at most every `HISN_AUDIT_FULL_VERIFY_SECS`, and the
//! answer says what its verdict covers and how old it is.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use hisn_audit_log::store::segment;
use serde_json::json;

use crate::common::{Resp, Server, Tenant, server};

/// The audit route, its page the newest record (not an edited one: a
/// record that no longer decodes fails the page itself).
async fn audit(srv: &Server, t: &Tenant) -> Resp {
    let newest = srv.audit_len(&t.id).await.saturating_sub(1);
    let r = srv
        .call(
            "GET",
            &t.path(&format!("/audit?limit=1&offset={newest}")),
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r
}

/// The number of records hashed per call is the number of records appended
/// since the previous call, whatever the length of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_route_hashes_only_new_records() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    srv.seed(&a).await;
    let verified = srv.app.state.audit.verified();
    let first = audit(&srv, &a).await;
    let total = first.body["total"].as_u64().unwrap();
    assert!(total >= 5, "{total}");
    let v = &first.body["verification"];
    assert_eq!(v["verified_size"], json!(total), "{v}");
    assert_eq!(v["full_verified_size"], json!(total), "{v}");
    assert_eq!(v["full_verify_every_secs"], 900, "{v}");
    assert!(v["full_verified_age_secs"].as_u64().unwrap() < 900, "{v}");
    let (hashed, full) = (verified.hashed(), verified.full_runs());
    for _ in 0..5 {
        let r = audit(&srv, &a).await;
        assert_eq!(r.body["verification"]["verified_size"], json!(total));
    }
    assert_eq!(
        verified.hashed(),
        hashed,
        "calls with no new record hashed records"
    );
    // Three writes, three records: the next call hashes those three.
    for i in 0..3 {
        let r = srv
            .call(
                "POST",
                &a.path("/assets"),
                Some(&a.token),
                Some(json!({ "name": "Valve", "serial": format!("V-{i}"), "location": "Jeddah" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    let r = audit(&srv, &a).await;
    let now = srv.audit_len(&a.id).await;
    assert_eq!(now, total + 3);
    assert_eq!(r.body["verification"]["verified_size"], json!(now));
    assert_eq!(r.body["verification"]["full_verified_size"], json!(total));
    assert_eq!(verified.hashed(), hashed + 3);
    assert_eq!(
        verified.full_runs(),
        full,
        "no whole-chain run within the interval"
    );
    assert!(
        matches!(
            r.body["verdict"].as_str(),
            Some("Intact" | "UnanchoredTail")
        ),
        "{r:?}"
    );
}

/// Rewrite one frame of `tenant`'s chain in the file store (the CRC made
/// to match, so the store reads it as an intact frame): `edit` gets the
/// record's bytes and the stored link.
fn rewrite_frame(dir: &Path, tenant: &str, seq: u64, edit: impl Fn(&mut [u8], &mut [u8])) {
    let mut stack = vec![dir.join("audit")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "seg") {
                continue;
            }
            let mut bytes = std::fs::read(&p).unwrap();
            let Ok(parsed) = segment::parse_segment(&bytes) else {
                continue;
            };
            if parsed.header.tenant.as_str() != tenant {
                continue;
            }
            let Some(i) = seq.checked_sub(parsed.header.first_seq) else {
                continue;
            };
            let Some(f) = parsed.frames.get(usize::try_from(i).unwrap()) else {
                continue;
            };
            let off = usize::try_from(f.offset).unwrap();
            let head = usize::from(f.head_len);
            let len = f.record_len as usize;
            let frame = &mut bytes[off..off + head + len + 32];
            {
                let (front, link) = frame.split_at_mut(head + len);
                edit(&mut front[head..], link);
            }
            let mut crc = crc32c::crc32c(&frame[..4]);
            crc = crc32c::crc32c_append(crc, &frame[8..]);
            frame[4..8].copy_from_slice(&crc.to_le_bytes());
            let mut file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            file.seek(SeekFrom::Start(f.offset)).unwrap();
            file.write_all(frame).unwrap();
            file.sync_all().unwrap();
            return;
        }
    }
    panic!("no frame {seq} of {tenant}");
}

/// Someone with write access to the data directory edits the trail after a
/// first verification: an in-place edit of an old record (its stored link
/// left alone) is reported once the whole-chain interval has passed, and
/// until then the answer says how old its whole-chain verdict is; a moved
/// head is reported by the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tamper_after_a_verification_is_reported_within_the_bound() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    srv.seed(&a).await;
    let state = &srv.app.state;
    state
        .audit
        .checkpoint_now(std::sync::Arc::clone(&state.audit_key))
        .await
        .unwrap();
    let r = audit(&srv, &a).await;
    assert_eq!(r.body["verdict"], "Intact", "{r:?}");

    // An old record's bytes edited, its stored link left alone.
    rewrite_frame(srv.dir.path(), &a.id, 2, |record, _| {
        let last = record.len() - 1;
        record[last] ^= 1;
    });
    let r = audit(&srv, &a).await;
    let v = &r.body["verification"];
    assert_eq!(
        r.body["verdict"], "Intact",
        "the incremental check cannot see it: {r:?}"
    );
    assert!(v["full_verified_age_secs"].as_u64().unwrap() < 900, "{v}");
    state.audit.verified().age(Duration::from_secs(901)).await;
    let r = audit(&srv, &a).await;
    assert_eq!(r.body["verdict"], "Tampered", "{r:?}");
    assert_eq!(r.body["verification"]["full_verified_age_secs"], 0);

    // Another tenant: its head's stored link changed, seen by the next call.
    let b = srv.tenant("Beta").await;
    let r = audit(&srv, &b).await;
    assert!(r.body["verdict"].as_str().unwrap() != "Tampered", "{r:?}");
    let last = srv.audit_len(&b.id).await - 1;
    rewrite_frame(srv.dir.path(), &b.id, last, |_, link| link[0] ^= 1);
    let r = audit(&srv, &b).await;
    assert_eq!(r.body["verdict"], "Tampered", "{r:?}");
}
