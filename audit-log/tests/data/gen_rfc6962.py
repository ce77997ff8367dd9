#!/usr/bin/env python3
"""Independent RFC 6962 Merkle tree vectors for hisn-audit-log (hashlib only).

Leaves are 32-byte record digests (here SHA-256(b"hisn-leaf-%d")); the leaf hash
is SHA-256(0x00 || digest), an interior node SHA-256(0x01 || left || right),
the empty tree SHA-256(""). Roots and proofs follow the recursive definitions
of RFC 6962 section 2.1 (MTH, PATH, PROOF/SUBPROOF) literally, so they share
no code or structure with the Rust implementation they check.

    python3 gen_rfc6962.py > rfc6962_pass.json
"""
import hashlib
import json


def h(b):
    return hashlib.sha256(b).digest()


def leaf(d):
    return h(b"\x00" + d)


def node(l, r):
    return h(b"\x01" + l + r)


def k_of(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d):
    n = len(d)
    if n == 0:
        return h(b"")
    if n == 1:
        return leaf(d[0])
    k = k_of(n)
    return node(mth(d[:k]), mth(d[k:]))


def path(m, d):
    n = len(d)
    if n == 1:
        return []
    k = k_of(n)
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = k_of(n)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def proof(m, d):
    return subproof(m, d, True)


def main():
    digests = [h(b"hisn-leaf-%d" % i) for i in range(70)]
    hx = lambda bs: [x.hex() for x in bs]
    out = {"source": "gen_rfc6962.py (RFC 6962 section 2.1, hashlib)",
           "leaves": hx(digests), "roots": [], "inclusion": [], "consistency": []}
    for n in range(0, 70):
        out["roots"].append({"size": n, "root": mth(digests[:n]).hex()})
    for n in list(range(1, 18)) + [31, 32, 33, 64, 69]:
        for m in range(n):
            out["inclusion"].append({"index": m, "size": n, "path": hx(path(m, digests[:n]))})
    for n in list(range(1, 18)) + [32, 33, 69]:
        for m in range(1, n + 1):
            out["consistency"].append({"old": m, "new": n, "path": hx(proof(m, digests[:n]))})
    print(json.dumps(out, indent=0))


if __name__ == "__main__":
    main()
