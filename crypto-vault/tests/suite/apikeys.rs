//! API key records bound to their owner, scopes and expiry.

use std::collections::BTreeSet;

use hisn_crypto_vault::{ApiKeyRecord, ApiKeys, Error, SecretKey};

fn keys() -> ApiKeys {
    ApiKeys::new("hisn_live", SecretKey::from_bytes([3; 32])).unwrap()
}

fn rejected(r: hisn_crypto_vault::Result<()>) -> bool {
    matches!(r, Err(Error::ApiKeyRejected))
}

/// An API key record edited in the database, or moved to another owner,
/// no longer verifies (class: stored value not bound to its context).
///
/// Root cause of the old failure: the stored hash was `HMAC(pepper, token)`
/// alone, and the owner (tenant, principal), scopes and expiry sat beside it
/// unprotected. Anyone who could write the database (the threat field
/// ciphertexts and the TOTP secret are bound against) took their own key, set
/// its tenant to another tenant's, added the `admin` scope and removed the
/// expiry, and the key verified as that tenant's admin key. `mint_for` /
/// `verify_for` hash the token with the owner, the scopes and the expiry; a
/// record from the plain `mint` never verifies through `verify_for` (no
/// downgrade), nor a bound record through `verify`.
#[test]
fn value_not_bound_to_its_context_api_key_record_edited_or_moved_fails() {
    let k = keys();
    let owner = "tenant-a/user-1";
    let (token, record) = k.mint_for(owner, ["read"], Some(1_000)).unwrap();
    let t = token.expose_secret();
    k.verify_for(owner, t, &record, 999, Some("read")).unwrap();
    assert_eq!(k.parse_id(t).unwrap(), record.id);

    // Moved to another owner (tenant or principal).
    for other in ["tenant-b/user-1", "tenant-a/user-2", "tenant-a/user-1 ", ""] {
        assert!(
            rejected(k.verify_for(other, t, &record, 999, None)),
            "{other:?}"
        );
    }
    // Scopes or expiry edited in storage.
    let edits = [
        ApiKeyRecord {
            scopes: BTreeSet::from(["read".into(), "admin".into()]),
            ..record.clone()
        },
        ApiKeyRecord {
            scopes: BTreeSet::from(["admin".into()]),
            ..record.clone()
        },
        ApiKeyRecord {
            scopes: BTreeSet::new(),
            ..record.clone()
        },
        ApiKeyRecord {
            expires_at: None,
            ..record.clone()
        },
        ApiKeyRecord {
            expires_at: Some(1_001),
            ..record.clone()
        },
    ];
    for edited in &edits {
        assert!(
            rejected(k.verify_for(owner, t, edited, 1, None)),
            "{edited:?}"
        );
    }
    // No downgrade either way; expiry, revocation and scope checks as before.
    assert!(rejected(k.verify(t, &record, 999, None)));
    let (plain_token, plain) = k.mint(["read"], None).unwrap();
    assert!(rejected(k.verify_for(
        owner,
        plain_token.expose_secret(),
        &plain,
        1,
        None
    )));
    k.verify(plain_token.expose_secret(), &plain, 1, None)
        .unwrap();
    assert!(rejected(k.verify_for(owner, t, &record, 1_000, None)));
    assert!(rejected(k.verify_for(owner, t, &record, 1, Some("write"))));
    let revoked = ApiKeyRecord {
        revoked: true,
        ..record.clone()
    };
    assert!(rejected(k.verify_for(owner, t, &revoked, 1, None)));
    assert!(matches!(
        k.verify_for(owner, "hisn_live_nope", &record, 1, None),
        Err(Error::ApiKeyMalformed)
    ));
    assert!(matches!(
        k.mint_for("", ["read"], None),
        Err(Error::InvalidInput(_))
    ));
    // Scope names cannot run together: {"ab"} is not {"a", "b"}.
    let (t2, r2) = k.mint_for(owner, ["a", "b"], None).unwrap();
    let merged = ApiKeyRecord {
        scopes: BTreeSet::from(["ab".into()]),
        ..r2.clone()
    };
    assert!(rejected(k.verify_for(
        owner,
        t2.expose_secret(),
        &merged,
        1,
        None
    )));
    k.verify_for(owner, t2.expose_secret(), &r2, 1, Some("b"))
        .unwrap();
}
