#!/usr/bin/env python3
"""Independent check of a Niji transparency-log inclusion proof (RFC 6962 / RFC 9162).

Usage: verify_inclusion.py HEAD.json PROOF.json ENTRY_FILE
  HEAD.json   output of `niji log head`
  PROOF.json  output of `niji log proof --index N`
  ENTRY_FILE  the entry's bytes (output of `niji log show --index N`, without the final newline)

Written from the RFCs alone, with nothing but the Python standard library, so that a third
party can check Niji's log without trusting Niji's code. Exit 0 when the proof holds.
(The head's Ed25519 signature is checked by the `signed_message` bytes with any Ed25519
library; the standard library has none.)
"""
import hashlib
import json
import sys


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, path: list) -> bytes:
    # RFC 9162 section 2.1.3.2
    if index >= size:
        raise ValueError("index beyond tree size")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def main() -> int:
    head = json.load(open(sys.argv[1]))
    proof = json.load(open(sys.argv[2]))
    entry = open(sys.argv[3], "rb").read()
    leaf = leaf_hash(entry)
    if leaf.hex() != proof["leaf_hash"]:
        print("entry does not match leaf_hash")
        return 1
    root = root_from_inclusion_proof(proof["leaf_index"], proof["tree_size"], leaf, [bytes.fromhex(h) for h in proof["audit_path"]])
    if root.hex() != proof["root_hash"]:
        print("audit path does not lead to root_hash")
        return 1
    if proof["tree_size"] == head["tree_size"] and root.hex() != head["root_hash"]:
        print("root differs from the signed head")
        return 1
    msg = bytes.fromhex(head["signed_message"])
    if msg[18:] != bytes.fromhex(head["root_hash"]) or int.from_bytes(msg[10:18], "big") != head["tree_size"]:
        print("signed message does not carry the head's size and root")
        return 1
    print(f"OK: entry {proof['leaf_index']} is in the tree of {proof['tree_size']} entries with root {root.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
