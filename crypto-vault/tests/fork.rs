//! Random values never repeat across a real `fork()` (class: random values
//! repeat after fork).
//!
//! Root cause of the old failure: nonces, password salts and API keys came from a
//! per-thread user-space generator that was never reseeded in a forked child.
//! Parent and child started from the same generator state, so after a fork they
//! produced the same AES-GCM nonce under the same data key (the XOR of the two
//! plaintexts and the GHASH key are then recoverable), the same API key and the
//! same argon2 salt. Now long-lived values come straight from the OS generator
//! and nonces from a generator reseeded after every fork (see `src/rng.rs`).
//!
//! This is a test binary without the libtest harness (`harness = false`), so the
//! process is single-threaded when it forks. The parent primes every generator,
//! forks a child, the child forks a grandchild (fork of a fork), and all three
//! then encrypt under one key, mint API keys and hash passwords; the descendants
//! send their outputs back through one pipe, and every value must be unique.
// Test code: unwrap/expect/panic are the assertion mechanism here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};

use fork::{Fork, fork, waitpid};
use hisn_crypto_vault::{
    ApiKeys, FieldContext, KeyId, Keyring, PasswordHasher, PasswordParams, SecretKey,
};

const ROUNDS: usize = 16;

struct Tools {
    ring: Keyring,
    keys: ApiKeys,
    hasher: PasswordHasher,
}

fn tools() -> Tools {
    Tools {
        ring: Keyring::from_keys("t", KeyId(1), [(KeyId(1), SecretKey::from_bytes([7; 32]))])
            .unwrap(),
        keys: ApiKeys::new("hisn_test", SecretKey::from_bytes([9; 32])).unwrap(),
        hasher: PasswordHasher::new(PasswordParams::new(64, 1, 1).unwrap()),
    }
}

/// One line per value: `<kind> <value>`.
fn outputs(t: &Tools, who: &str) -> String {
    let ctx = FieldContext::new("t", "users", "email", "1").unwrap();
    let mut out = String::new();
    for _ in 0..ROUNDS {
        let ct = t.ring.encrypt(&ctx, b"same plaintext").unwrap();
        out.push_str(&format!("nonce {}\n", hex::encode(&ct.as_bytes()[5..17])));
        let (token, record) = t.keys.mint(["read"], None).unwrap();
        out.push_str(&format!("apikey_id {}\n", record.id));
        out.push_str(&format!("apikey {}\n", token.expose_secret()));
        let phc = t.hasher.hash("same password").unwrap();
        let salt = phc.split('$').nth(4).unwrap().to_owned();
        out.push_str(&format!("salt {salt}\n"));
    }
    let _ = who;
    out
}

fn main() {
    let t = tools();
    // Prime every generator in the parent before forking: its state (and any
    // buffered output) is what a child inherits.
    let primed = outputs(&t, "parent-before");
    let (mut reader, mut writer) = std::io::pipe().unwrap();

    match fork().unwrap() {
        Fork::Child => {
            drop(reader);
            // Fork again before drawing anything: the grandchild inherits the
            // child's untouched state.
            let who = match fork().unwrap() {
                Fork::Child => "grandchild",
                Fork::Parent(pid) => {
                    let mine = outputs(&t, "child");
                    writer.write_all(mine.as_bytes()).unwrap();
                    let status = waitpid(pid).unwrap();
                    std::process::exit(if status == 0 { 0 } else { 3 });
                }
            };
            let mine = outputs(&t, who);
            writer.write_all(mine.as_bytes()).unwrap();
            std::process::exit(0);
        }
        Fork::Parent(pid) => {
            drop(writer);
            let mine = outputs(&t, "parent");
            let mut theirs = String::new();
            reader.read_to_string(&mut theirs).unwrap();
            let status = waitpid(pid).unwrap();
            assert_eq!(status, 0, "child or grandchild failed");

            let mut count: HashMap<&str, usize> = HashMap::new();
            let mut seen = std::collections::HashSet::new();
            for line in primed.lines().chain(mine.lines()).chain(theirs.lines()) {
                let (kind, _) = line.split_once(' ').unwrap();
                *count.entry(kind).or_default() += 1;
                assert!(seen.insert(line.to_owned()), "repeated after fork: {line}");
            }
            // Parent before and after, child and grandchild: four processes'
            // worth of every kind, so the descendants really produced output.
            for kind in ["nonce", "apikey_id", "apikey", "salt"] {
                assert_eq!(count.get(kind), Some(&(4 * ROUNDS)), "{kind}");
            }
            println!("fork: 1 passed, 0 failed");
        }
    }
}
