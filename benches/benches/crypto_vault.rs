//! hisn-crypto-vault benchmarks: field encryption against raw AES-256-GCM, blind
//! indexes against raw HMAC-SHA256, argon2id at the default parameters.
// Bench setup on constant inputs: a failure here is a broken bench, not input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hisn_benches::{BASELINE, HISN, filler, interleaved_ratio};
use hisn_crypto_vault::{
    BlindIndexer, FieldContext, KeyId, Keyring, MAX_USAGE_CAP, PasswordHasher, PasswordParams,
    SecretKey,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY: [u8; 32] = [0x42; 32];

fn field(c: &mut Criterion, name: &str, len: usize) {
    let pt = filler(len);
    let ring = Keyring::from_keys(
        "tenant-0001",
        KeyId(1),
        [(KeyId(1), SecretKey::from_bytes(KEY))],
    )
    .unwrap()
    .with_usage_cap(MAX_USAGE_CAP)
    .unwrap();
    let ctx = FieldContext::new(
        "tenant-0001",
        "integrations",
        "oauth_token",
        "8f14e45f-ceea-467f-a0e6-3c5d7a1b2c3d",
    )
    .unwrap();
    let raw = Aes256Gcm::new_from_slice(&KEY).unwrap();
    let nonce = Nonce::from([7u8; 12]);

    let group = format!("crypto_vault/{name}");
    let hisn = || {
        let ct = ring.encrypt(&ctx, black_box(&pt)).unwrap();
        ring.decrypt(&ctx, &ct).unwrap()
    };
    let baseline = || {
        let ct = raw.encrypt(&nonce, black_box(pt.as_slice())).unwrap();
        raw.decrypt(&nonce, ct.as_slice()).unwrap()
    };
    let ratio = interleaved_ratio((64 * 1024 / len).clamp(4, 200), &hisn, &baseline);
    println!("{group}: interleaved median ratio hisn/baseline = {ratio:.3}");
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(u64::try_from(len).unwrap()));
    g.bench_function(HISN, |b| b.iter(&hisn));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();
}

fn field_256(c: &mut Criterion) {
    field(c, "field_256B", 256);
}

fn field_64k(c: &mut Criterion) {
    field(c, "field_64KiB", 64 * 1024);
}

fn blind_index(c: &mut Criterion) {
    let value = b"alice.example@example-company.com";
    let indexer =
        BlindIndexer::new(&SecretKey::from_bytes(KEY), "tenant-0001", "users", "email").unwrap();
    let hisn = || indexer.index(black_box(value)).unwrap();
    let baseline = || {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY).unwrap();
        mac.update(black_box(value));
        mac.finalize().into_bytes()
    };
    let ratio = interleaved_ratio(200, &hisn, &baseline);
    println!("crypto_vault/blind_index: interleaved median ratio hisn/baseline = {ratio:.3}");
    let mut g = c.benchmark_group("crypto_vault/blind_index");
    g.bench_function(HISN, |b| b.iter(&hisn));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();
}

fn argon2id_default(c: &mut Criterion) {
    use argon2::{Algorithm, Argon2, Params, Version};
    let hasher = PasswordHasher::new(PasswordParams::DEFAULT);
    let raw = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, None).unwrap(),
    );
    let mut g = c.benchmark_group("crypto_vault/argon2id_default");
    g.sample_size(10);
    g.bench_function(HISN, |b| {
        b.iter(|| {
            black_box(
                hasher
                    .hash(black_box("correct horse battery staple"))
                    .unwrap(),
            )
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            raw.hash_password_into(
                black_box(b"correct horse battery staple"),
                b"0123456789abcdef",
                &mut out,
            )
            .unwrap();
            black_box(out)
        });
    });
    g.finish();
}

criterion_group!(benches, field_256, field_64k, blind_index, argon2id_default);
criterion_main!(benches);
