#!/usr/bin/env python3
"""Writes the legacy password-hash vectors under crypto-vault/tests/data/.

Two kinds of data:

* Published vectors, copied here with their source and checked where Python
  can compute them (RFC 7914 scrypt and PBKDF2-HMAC-SHA256 with hashlib; the
  Openwall/OpenBSD bcrypt vectors with the `bcrypt` package where the password
  is valid for it).
* Hashes made by another implementation than the one under test: Python 3's
  hashlib (scrypt, pbkdf2_hmac) and pyca/bcrypt (`pip install bcrypt`), laid
  out as the stores that hold them do (PHC strings, passlib's PBKDF2 layout,
  Node.js-style `salt:hash` hex with the salt text fed as salt, base64
  `salt:hash` with decoded salt).

Run from the repository root:  python3 crypto-vault/tests/data/gen_legacy_passwords.py
The generated hashes use fresh random salts: re-running changes them (the
tests check whatever is committed). Passwords are stored hex-encoded (some
published bcrypt vectors are not UTF-8).
"""

import base64
import hashlib
import json
import os

import bcrypt  # pyca/bcrypt

HERE = os.path.dirname(os.path.abspath(__file__))


def entry(source, password, hash_, **extra):
    if isinstance(password, str):
        password = password.encode()
    e = {"source": source, "password_hex": password.hex(), "hash": hash_}
    e.update(extra)
    return e


def write(name, entries):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")


def b64(b):  # PHC: standard alphabet, no padding
    return base64.b64encode(b).decode().rstrip("=")


def ab64(b):  # passlib's adapted base64: '.' for '+', no padding
    return b64(b).replace("+", ".")


# --- bcrypt: Openwall crypt_blowfish wrapper.c / OpenBSD regress vectors -----
OW = "openwall crypt_blowfish 1.3 wrapper.c"
OB = "OpenBSD bcrypt regress"
PY = "py-bcrypt tests"
bcrypt_pass = [
    entry(OW, "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    entry(OW, "U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"),
    entry(OW, "U*U*U", "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a"),
    entry(OW, "", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"),
    entry(OW, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
          "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"),
    # 8-bit passwords: $2a$ (OpenBSD), $2b$ and $2y$ agree; the sign-extension
    # bug ($2x$) gives other hashes (see the fail file).
    entry(OW, b"\xa3", "$2a$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq"),
    entry(OW, b"\xa3", "$2b$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq"),
    entry(OW, b"\xa3", "$2y$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq"),
    entry(OW, b"\xff\xff\xa3", "$2y$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e"),
    entry(OB, b"\xff\xff\xa3", "$2b$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e"),
    entry(OW, b"\xff\xa3345", "$2a$05$/OK.fbVrR/bpIqNJ5ianF.nRht2l/HRhr6zmCp9vYUvvsqynflf9e"),
    entry(OW, b"\xff\xa3345", "$2y$05$/OK.fbVrR/bpIqNJ5ianF.nRht2l/HRhr6zmCp9vYUvvsqynflf9e"),
    entry(OW, b"\xa3ab", "$2a$05$/OK.fbVrR/bpIqNJ5ianF.6IflQkJytoRVc1yuaNtHfiuq.FRlSIS"),
    entry(OW, b"\xaa\x55" * 36, "$2a$05$/OK.fbVrR/bpIqNJ5ianF.R9xrDjiycxMbQE2bp.vgqlYpW5wx2yy"),
    entry(OW, b"\x55\xaa\xff" * 24, "$2a$05$/OK.fbVrR/bpIqNJ5ianF.9tQZzcJfm3uj2NvJ/n5xkhpqLrMpWCe"),
    entry(OB, "0" * 72, "$2a$05$CCCCCCCCCCCCCCCCCCCCC.6.O1dLNbjod2uo0DVcW.jHucKbPDdHS"),
    entry(OB, "0" * 72, "$2b$05$CCCCCCCCCCCCCCCCCCCCC.6.O1dLNbjod2uo0DVcW.jHucKbPDdHS"),
    entry(PY, "", "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s."),
    entry(PY, "a", "$2a$10$k87L/MF28Q673VKh8/cPi.SUl7MU/rWuSiIDDFayrKk/1tBsSQu4u"),
    entry(PY, "abc", "$2a$10$WvvTPHKwdBJ3uk0Z37EMR.hLA2W6N9AEBhEgrAOljy2Ae5MtaSIUi"),
]
# Each must be refused or must not match: "expect" says which.
bcrypt_fail = [
    # crypt_blowfish's $2x$ (the pre-2011 sign-extension bug) is refused.
    entry(OW, b"\xa3", "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", expect="rejected"),
    entry(OW, b"1\xa3345", "$2x$05$/OK.fbVrR/bpIqNJ5ianF.o./n25XVfn6oAPaUvHe.Csk4zRfsYPi", expect="rejected"),
    # The bug's collision: under $2x$ "\xa3" and "\xff\xff\xa3" share a hash;
    # read as $2b$/$2y$ it belongs to "\xff\xff\xa3" only.
    entry(OW, b"\xa3", "$2y$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", expect="mismatch"),
    # crypt_blowfish's $2a$ "safety countermeasure" hash for "\xff\xff\xa3":
    # OpenBSD's $2a$ (implemented here) gives the $2b$ hash instead, so this
    # countermeasure hash does not verify (documented limitation).
    entry(OW, b"\xff\xff\xa3", "$2a$05$/OK.fbVrR/bpIqNJ5ianF.nqd1wy.pTMdcvrRWxyiGL2eMz.2a85.", expect="mismatch"),
    # The published "chars after 72 are ignored" vectors: bcrypt truncates, so
    # the longer password would match; here it never does.
    entry(OW, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored",
          "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", expect="mismatch"),
    entry(OW, b"\xaa" * 72 + b"chars after 72 are ignored as usual",
          "$2a$05$/OK.fbVrR/bpIqNJ5ianF.swQOIzjOiJ9GHEPuhEkvqrUyvWhEMx6", expect="mismatch"),
    # A NUL ends a C string: "U*U\0x" would match "U*U"'s hash.
    entry(OW, b"U*U\x00x", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", expect="mismatch"),
    entry(OW, "U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", expect="mismatch"),
    entry(OW, "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.F5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", expect="mismatch"),
    entry(OW, "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe", expect="rejected"),
    entry(OW, "U*U", "$2c$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", expect="unknown"),
    # A planted cost: 2^31 rounds (days of work) refused before any.
    entry(OW, "U*U", "$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", expect="too_costly"),
]
for e in bcrypt_pass:
    pw = bytes.fromhex(e["password_hex"])
    assert bcrypt.checkpw(pw, e["hash"].replace("$2y$", "$2b$").encode()), e
write("openwall_bcrypt_pass.json", bcrypt_pass)
write("openwall_bcrypt_fail.json", bcrypt_fail)

# --- scrypt: RFC 7914 section 12 --------------------------------------------
RFC = "RFC 7914 section 12"
rfc_scrypt = [
    ("", "", 4, 1, 1,
     "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"),
    ("password", "NaCl", 10, 8, 16,
     "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
    ("pleaseletmein", "SodiumChloride", 14, 8, 1,
     "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
]
scrypt_pass = []
for pw, salt, ln, r, p, dk in rfc_scrypt:
    got = hashlib.scrypt(pw.encode(), salt=salt.encode(), n=1 << ln, r=r, p=p, dklen=64, maxmem=256 << 20)
    assert got.hex() == dk, (pw, got.hex())
    scrypt_pass.append(entry(RFC, pw, f"$scrypt$ln={ln},r={r},p={p}${b64(salt.encode())}${b64(bytes.fromhex(dk))}"))
# Vector 4 (N = 2^20, r = 8: 1 GiB) is above every bound: refused before work.
scrypt_fail = [
    entry(RFC, "pleaseletmein",
          "$scrypt$ln=20,r=8,p=1$" + b64(b"SodiumChloride") + "$" + b64(bytes.fromhex(
              "2101cb9b6a511aaeaddbbe09cf70f881ec568d574a2ffd4dabe5ee9820adaa478e56fd8f4ba5d09ffa1c6d927c40f4c337304049e8a952fbcbf45c6fa77a41a4")),
          expect="too_costly"),
    entry(RFC, "pleaseletmeIn", scrypt_pass[2]["hash"], expect="mismatch"),
    entry(RFC, "password", scrypt_pass[1]["hash"].replace("p=16", "p=15"), expect="mismatch"),
    entry(RFC, "password", "$scrypt$ln=10,r=8$TmFDbA$" + b64(b"x" * 64), expect="rejected"),
]
write("rfc7914_scrypt_pass.json", scrypt_pass)
write("rfc7914_scrypt_fail.json", scrypt_fail)

# --- PBKDF2-HMAC-SHA256: RFC 7914 section 11 and RFC 6070-style ---------------
pbkdf2_vectors = [
    ("RFC 7914 section 11", "passwd", "salt", 1,
     "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"),
    ("RFC 7914 section 11", "Password", "NaCl", 80000,
     "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"),
    ("RFC 6070-style (SHA-256)", "password", "salt", 1,
     "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
    ("RFC 6070-style (SHA-256)", "password", "salt", 2,
     "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"),
    ("RFC 6070-style (SHA-256)", "password", "salt", 4096,
     "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"),
    ("RFC 6070-style (SHA-256)", "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096,
     "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9"),
    ("RFC 6070-style (SHA-256)", "pass\0word", "sa\0lt", 4096, "89b69d0516f829893c696226650a8687"),
]
rfc7914_pbkdf2, rfc6070_pbkdf2 = [], []
for src, pw, salt, c, dk in pbkdf2_vectors:
    got = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt.encode(), c, len(dk) // 2)
    assert got.hex() == dk, (src, pw, got.hex())
    e = entry(src, pw, f"$pbkdf2-sha256$i={c},l={len(dk) // 2}${b64(salt.encode())}${b64(bytes.fromhex(dk))}")
    (rfc7914_pbkdf2 if src.startswith("RFC 7914") else rfc6070_pbkdf2).append(e)
write("rfc7914_pbkdf2_sha256_pass.json", rfc7914_pbkdf2)
write("rfc6070_style_pbkdf2_sha256_pass.json", rfc6070_pbkdf2)

# --- Made by other implementations (random salts) ----------------------------
PYB = "pyca/bcrypt " + bcrypt.__version__
HL = "Python hashlib"
passwords = ["correct horse battery staple", "hunter2", "", "pässwörd ✓", "x" * 72, "مرحبا بالعالم"]
other_pass, other_fail = [], []
for pw in passwords:
    h = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()
    other_pass.append(entry(PYB, pw, h))
    other_pass.append(entry(PYB, pw, h.replace("$2b$", "$2y$", 1)))
    other_fail.append(entry(PYB, pw + "!", h, expect="mismatch"))
# 2a prefix from pyca/bcrypt too.
h = bcrypt.hashpw(b"legacy 2a", bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()
other_pass.append(entry(PYB, "legacy 2a", h))
for pw in passwords[:4]:
    salt = os.urandom(16)
    # scrypt PHC (what passlib and RustCrypto write), N = 2^10, r = 8, p = 1.
    dk = hashlib.scrypt(pw.encode(), salt=salt, n=1 << 10, r=8, p=1, dklen=32)
    other_pass.append(entry(HL, pw, f"$scrypt$ln=10,r=8,p=1${b64(salt)}${b64(dk)}"))
    # Node.js idiom: hex salt text fed as the salt, 64-byte key, N = 2^14, r = 8, p = 1.
    salt_text = salt.hex()
    dk = hashlib.scrypt(pw.encode(), salt=salt_text.encode(), n=1 << 14, r=8, p=1, dklen=64)
    other_pass.append(entry(HL, pw, f"{salt_text}:{dk.hex()}", layout="node"))
    # base64 salt:hash, decoded salt fed, N = 2^14, r = 8, p = 1.
    dk = hashlib.scrypt(pw.encode(), salt=salt, n=1 << 14, r=8, p=1, dklen=64)
    other_pass.append(entry(HL, pw, f"{base64.b64encode(salt).decode()}:{base64.b64encode(dk).decode()}",
                            layout="decoded"))
    other_fail.append(entry(HL, pw + " ", f"{base64.b64encode(salt).decode()}:{base64.b64encode(dk).decode()}",
                            layout="decoded", expect="mismatch"))
    # The same string read with the other salt convention does not match.
    other_fail.append(entry(HL, pw, f"{base64.b64encode(salt).decode()}:{base64.b64encode(dk).decode()}",
                            layout="node", expect="mismatch"))
    # PBKDF2-SHA256: PHC and passlib's layout.
    dk = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, 29000, 32)
    other_pass.append(entry(HL, pw, f"$pbkdf2-sha256$i=29000,l=32${b64(salt)}${b64(dk)}"))
    other_pass.append(entry(HL + " (passlib layout)", pw, f"$pbkdf2-sha256$29000${ab64(salt)}${ab64(dk)}"))
    other_fail.append(entry(HL, pw, f"$pbkdf2-sha256$i=29001,l=32${b64(salt)}${b64(dk)}", expect="mismatch"))
other_fail.append(entry(HL, "x", "$pbkdf2-sha256$i=4000000000,l=32$c2FsdA$" + b64(b"y" * 32), expect="too_costly"))
write("python_legacy_hashes_pass.json", other_pass)
write("python_legacy_hashes_fail.json", other_fail)
print("ok")
