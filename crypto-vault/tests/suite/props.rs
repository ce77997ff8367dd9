//! Property tests of the field format: round trip, bit flips, context swaps,
//! rotation, shredding.

use std::sync::OnceLock;

use hisn_crypto_vault::{
    Ciphertext, Error, FieldContext, KeyId, Keyring, MasterKey, MemoryKeyStore, SecretKey, Vault,
};
use proptest::prelude::*;

fn ring() -> &'static Keyring {
    static R: OnceLock<Keyring> = OnceLock::new();
    R.get_or_init(|| {
        Keyring::from_keys(
            "tenant-a",
            KeyId(1),
            [(KeyId(1), SecretKey::from_bytes([42; 32]))],
        )
        .unwrap()
    })
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9_\\-]{1,12}"
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip_any_plaintext_and_context(
        pt in proptest::collection::vec(any::<u8>(), 0..512),
        table in component(), column in component(), row in component(),
    ) {
        let r = Keyring::from_keys(&table, KeyId(3), [(KeyId(3), SecretKey::from_bytes([1; 32]))]).unwrap();
        let ctx = FieldContext::new(&table, &table, &column, &row).unwrap();
        let ct = r.encrypt(&ctx, &pt).unwrap();
        prop_assert_eq!(ct.plaintext_len(), pt.len());
        let out = r.decrypt(&ctx, &ct).unwrap();
        prop_assert_eq!(out.as_bytes(), pt.as_slice());
        let back = Ciphertext::from_text(&ct.to_text()).unwrap();
        let out = r.decrypt(&ctx, &back).unwrap();
        prop_assert_eq!(out.as_bytes(), pt.as_slice());
    }

    #[test]
    fn every_single_bit_flip_fails(pt in proptest::collection::vec(any::<u8>(), 0..48)) {
        let ctx = FieldContext::new("tenant-a", "t", "c", "r").unwrap();
        let ct = ring().encrypt(&ctx, &pt).unwrap();
        let bytes = ct.as_bytes().to_vec();
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let res = Ciphertext::from_vec(b).and_then(|c| ring().decrypt(&ctx, &c));
            prop_assert!(res.is_err(), "flip of bit {} decrypted", bit);
        }
    }

    #[test]
    fn every_context_component_swap_fails(
        pt in proptest::collection::vec(any::<u8>(), 0..64),
        which in 0usize..5, other in component(),
    ) {
        let base = ["tenant-a", "users", "email", "17"];
        let ctx = FieldContext::new(base[0], base[1], base[2], base[3]).unwrap();
        let ct = ring().encrypt(&ctx, &pt).unwrap();
        if which == 4 {
            // Relabel the key id (both keys present, same key bytes).
            let two = Keyring::from_keys("tenant-a", KeyId(1), [
                (KeyId(1), SecretKey::from_bytes([42; 32])),
                (KeyId(2), SecretKey::from_bytes([42; 32])),
            ]).unwrap();
            let mut b = ct.as_bytes().to_vec();
            b[1..5].copy_from_slice(&2u32.to_be_bytes());
            let relabelled = Ciphertext::from_vec(b).unwrap();
            prop_assert!(matches!(two.decrypt(&ctx, &relabelled), Err(Error::Decrypt)));
        } else {
            let mut parts = base.map(str::to_owned);
            prop_assume!(parts[which] != other);
            parts[which] = other;
            let moved = FieldContext::new(&parts[0], &parts[1], &parts[2], &parts[3]).unwrap();
            let r = Keyring::from_keys(&parts[0], KeyId(1), [(KeyId(1), SecretKey::from_bytes([42; 32]))]).unwrap();
            prop_assert!(matches!(r.decrypt(&moved, &ct), Err(Error::Decrypt)));
        }
    }
}

/// Read one length-prefixed component back from `aad` (the documented
/// encoding), or `None` if it does not parse.
fn read_component(aad: &mut &[u8]) -> Option<String> {
    let (&first, rest) = aad.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let (&second, rest) = rest.split_first()?;
        (
            usize::from(u16::from_be_bytes([first, second]) & 0x7FFF),
            rest,
        )
    };
    let (part, rest) = (rest.get(..len)?, rest.get(len..)?);
    *aad = rest;
    String::from_utf8(part.to_vec()).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The AAD decodes back to exactly its context and key id, then zeros, so
    /// two different contexts can never share an AAD (lengths span both prefix
    /// sizes).
    #[test]
    fn aad_decodes_back_to_its_context(
        parts in proptest::array::uniform4("[a-z0-9]{1,200}"),
        key_id in any::<u32>(),
    ) {
        let ctx = FieldContext::new(&parts[0], &parts[1], &parts[2], &parts[3]).unwrap();
        let aad = ctx.aad(KeyId(key_id));
        let mut rest = aad.strip_prefix(b"hvf\x01".as_slice()).unwrap();
        for part in &parts {
            let read = read_component(&mut rest);
            prop_assert_eq!(read.as_ref(), Some(part));
        }
        let tail = key_id.to_be_bytes();
        prop_assert_eq!(&rest[..4], tail.as_slice());
        prop_assert!(rest[4..].len() < 64 && rest[4..].iter().all(|&b| b == 0));
        prop_assert_eq!(aad.len() % 64, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn rotation_keeps_old_values_readable_and_shredding_ends_everything(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6),
        rotations in 1usize..4,
    ) {
        rt().block_on(async {
            let vault = Vault::new(MemoryKeyStore::new(), MasterKey::generate().unwrap());
            vault.provision_tenant("acme").await.unwrap();
            let mut stored = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let row = i.to_string();
                let ct = vault.encrypt(&FieldContext::new("acme", "t", "c", &row).unwrap(), v).await.unwrap();
                stored.push((row, ct));
                if i < rotations {
                    vault.rotate_data_key("acme").await.unwrap();
                }
            }
            for ((row, ct), v) in stored.iter().zip(&values) {
                let ctx = FieldContext::new("acme", "t", "c", row).unwrap();
                assert_eq!(vault.decrypt(&ctx, ct).await.unwrap().as_bytes(), v.as_slice());
            }
            let idx = vault.blind_indexer("acme", "t", "c").await.unwrap().index(b"x").unwrap();
            vault.shred_tenant("acme").await.unwrap();
            for (row, ct) in &stored {
                let ctx = FieldContext::new("acme", "t", "c", row).unwrap();
                assert!(matches!(vault.decrypt(&ctx, ct).await, Err(Error::TenantShredded)));
            }
            assert!(matches!(vault.blind_indexer("acme", "t", "c").await, Err(Error::TenantShredded)));
            assert!(matches!(vault.encrypt(&FieldContext::new("acme", "t", "c", "0").unwrap(), b"x").await, Err(Error::TenantShredded)));
            assert_eq!(idx.as_bytes().len(), 32);
        });
    }
}
