#!/usr/bin/env python3
"""Generate the hisn-crypto-vault v1 known-answer vectors independently of the
Rust code, from the formats documented in the README (field ciphertexts, as in
src/format.rs; wrapped tenant keys, as in src/wrap.rs), using the Python
`cryptography` package's AES-GCM. Run: python3 gen_kat.py (writes the JSON files)."""
import base64, json, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def lp(b):
    assert 1 <= len(b) <= 1024
    return (bytes([len(b)]) if len(b) < 0x80 else struct.pack(">H", 0x8000 | len(b))) + b

def aad(tenant, table, column, row, key_id):
    a = (b"hvf" + bytes([1]) + lp(tenant.encode()) + lp(table.encode())
         + lp(column.encode()) + lp(row.encode()) + struct.pack(">I", key_id))
    return a + bytes(-len(a) % 64)

def seal(key, key_id, nonce, ctx, pt):
    ct = AESGCM(key).encrypt(nonce, pt, aad(*ctx, key_id))
    return bytes([1]) + struct.pack(">I", key_id) + nonce + ct

def text(b):
    return "hv1:" + base64.urlsafe_b64encode(b).decode().rstrip("=")

cases = [
    ("empty plaintext", bytes(range(32)), 1, bytes(12), ("t1", "users", "email", "1"), b""),
    ("short ascii", bytes(range(32)), 1, bytes(range(12)), ("t1", "users", "email", "42"), b"alice@example.com"),
    ("key id 7, unicode context", bytes([0xA5] * 32), 7, bytes([0xFF] * 12),
     ("\u0634\u0631\u0643\u0629", "integrations", "oauth_token", "9f1c"), "\u0633\u0631".encode()),
    ("length-prefix boundary ab|c", bytes(range(32, 64)), 4294967295, bytes(range(100, 112)), ("ab", "c", "x", "y"), b"z" * 40),
    ("length-prefix boundary a|bc", bytes(range(32, 64)), 4294967295, bytes(range(100, 112)), ("a", "bc", "x", "y"), b"z" * 40),
    ("uuid context, 127-byte column (one-byte length)", bytes(range(64, 96)), 2, bytes(range(1, 13)),
     ("8f14e45f-ceea-467f-a0e6-3c5d7a1b2c3d", "integrations", "c" * 127, "0b6f2a1e-5d4c-4b3a-9a8b-7c6d5e4f3a2b"), b"token"),
    ("128-byte and 1024-byte components (two-byte lengths)", bytes(range(64, 96)), 2, bytes(range(1, 13)),
     ("t" * 128, "integrations", "oauth_token", "r" * 1024), b"token"),
]
passing = []
for comment, key, kid, nonce, ctx, pt in cases:
    b = seal(key, kid, nonce, ctx, pt)
    passing.append({"comment": comment, "key": key.hex(), "key_id": kid, "tenant": ctx[0], "table": ctx[1],
                    "column": ctx[2], "row": ctx[3], "nonce": nonce.hex(), "plaintext": pt.hex(),
                    "ciphertext_hex": b.hex(), "ciphertext_text": text(b)})

base_key, base_ctx = bytes(range(32)), ("t1", "users", "email", "42")
good = seal(base_key, 1, bytes(range(12)), base_ctx, b"alice@example.com")
def fail(comment, ctext, error, ctx=base_ctx, key_id=1):
    return {"comment": comment, "key": base_key.hex(), "key_id": key_id, "tenant": ctx[0], "table": ctx[1],
            "column": ctx[2], "row": ctx[3], "ciphertext_text": ctext, "error": error}
flipped_tag = bytearray(good); flipped_tag[-1] ^= 1
flipped_ct = bytearray(good); flipped_ct[17] ^= 0x80
relabelled = bytearray(good); relabelled[1:5] = struct.pack(">I", 2)
failing = [
    fail("tag bit flipped", text(bytes(flipped_tag)), "decrypt"),
    fail("ciphertext bit flipped", text(bytes(flipped_ct)), "decrypt"),
    fail("moved to another row", text(good), "decrypt", ctx=("t1", "users", "email", "43")),
    fail("moved to another tenant", text(good), "decrypt", ctx=("t2", "users", "email", "42")),
    fail("moved to another column", text(good), "decrypt", ctx=("t1", "users", "phone", "42")),
    fail("relabelled key id (key 2 present, same bytes)", text(bytes(relabelled)), "decrypt", key_id=2),
    fail("unknown key id (same opaque error as any failed decryption)", text(bytes(relabelled)), "decrypt"),
    fail("truncated below minimum", text(good[:32]), "malformed"),
    fail("unknown version byte", text(bytes([2]) + good[1:]), "unsupported_version"),
    fail("unknown text prefix version", "hv9:" + text(good)[4:], "unsupported_version"),
    fail("bad base64", "hv1:****", "malformed"),
    fail("padded base64", text(good) + "=", "malformed"),
    fail("no prefix", base64.urlsafe_b64encode(good).decode(), "malformed"),
]
json.dump(passing, open("hisn_vault_v1_kat_pass.json", "w"), indent=1, ensure_ascii=False)
json.dump(failing, open("hisn_vault_v1_kat_fail.json", "w"), indent=1, ensure_ascii=False)


# Wrapped tenant keys (README "Wrapped tenant keys"):
#   0x01 | nonce (12) | AES-256-GCM(key) (32) | tag (16) under the master key, with
#   AAD = lp32("hisn-vault/wrap") | 0x01 | lp32(purpose) | lp32(tenant) | key id (u32 BE)
# where lp32(x) = len(x) as u32 big-endian, then x.
def lp32(b):
    return struct.pack(">I", len(b)) + b

def wrap_aad(purpose, tenant, key_id):
    return lp32(b"hisn-vault/wrap") + bytes([1]) + lp32(purpose.encode()) + lp32(tenant.encode()) + struct.pack(">I", key_id)

def wrap(master, purpose, tenant, key_id, nonce, key):
    return bytes([1]) + nonce + AESGCM(master).encrypt(nonce, key, wrap_aad(purpose, tenant, key_id))

wrap_cases = [
    ("data key, short tenant", bytes(range(32)), "data", "t1", 1, bytes(range(12)), bytes([0x11] * 32)),
    ("index key", bytes(range(32)), "index", "t1", 1, bytes([9] * 12), bytes(range(100, 132))),
    ("data key 7, unicode tenant", bytes([0x5A] * 32), "data", "\u0634\u0631\u0643\u0629", 7, bytes([0xFF] * 12), bytes(range(32))),
    ("long tenant (300 bytes: a one- or two-byte length would differ)", bytes(range(64, 96)), "data", "t" * 300, 4294967295,
     bytes(range(1, 13)), bytes([0xC3] * 32)),
]
wrapped = []
for comment, master, purpose, tenant, kid, nonce, key in wrap_cases:
    w = wrap(master, purpose, tenant, kid, nonce, key)
    wrapped.append({"comment": comment, "master_key": master.hex(), "purpose": purpose, "tenant": tenant,
                    "key_id": kid, "nonce": nonce.hex(), "key": key.hex(), "wrapped": w.hex()})
json.dump(wrapped, open("hisn_vault_wrap_v1_kat_pass.json", "w"), indent=1, ensure_ascii=False)
