"""Runs SM2/SM3/SM4 operations with the Python `gmssl` package (an implementation partners use,
independent of the hub's RustCrypto code) so the hub's tests can compare results in both
directions. Reads a JSON list of operations on stdin, prints a JSON list of results.

Operations (all byte strings are hex):
  {"op": "sm3", "data": …}                          → digest
  {"op": "hmac_sm3", "key": …, "data": …}           → RFC 2104 HMAC over gmssl's SM3
  {"op": "sm4_cbc_encrypt", "key", "iv", "data"}    → ciphertext (PKCS#7)
  {"op": "sm4_cbc_decrypt", "key", "iv", "data"}    → plaintext
  {"op": "sm2_sign", "private_key", "public_key", "data"}   → r‖s (default id 1234567812345678)
  {"op": "sm2_verify", "public_key", "signature", "data"}   → "ok" or "bad"
  {"op": "sm2_encrypt", "public_key", "data"}       → C1C3C2 ciphertext (C1 without 04)
  {"op": "sm2_decrypt", "private_key", "public_key", "data"} → plaintext
Public keys are x‖y (128 hex digits), as gmssl writes them.
"""
import json
import sys

from gmssl import func, sm2, sm3, sm4


def sm3_bytes(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    block = 64
    if len(key) > block:
        key = sm3_bytes(key)
    key = key.ljust(block, b"\0")
    inner = sm3_bytes(bytes(k ^ 0x36 for k in key) + data)
    return sm3_bytes(bytes(k ^ 0x5C for k in key) + inner)


def crypt(private_key, public_key, mode=0):
    """CryptSM2 with the public key set as given. gmssl 3.2.2's constructor strips a "04"
    prefix with str.lstrip("04"), which removes every leading '0' and '4' character: a key
    whose x coordinate begins with those digits (written x‖y, about 1 key in 256; written
    04‖x‖y, about 1 in 8) is silently corrupted. Partners using gmssl need the same fix."""
    c = sm2.CryptSM2(private_key=private_key, public_key="", mode=mode)
    c.public_key = public_key
    return c


def run(op):
    b = lambda name: bytes.fromhex(op[name])
    kind = op["op"]
    if kind == "sm3":
        return sm3_bytes(b("data")).hex()
    if kind == "hmac_sm3":
        return hmac_sm3(b("key"), b("data")).hex()
    if kind in ("sm4_cbc_encrypt", "sm4_cbc_decrypt"):
        c = sm4.CryptSM4()
        c.set_key(b("key"), sm4.SM4_ENCRYPT if kind.endswith("encrypt") else sm4.SM4_DECRYPT)
        return c.crypt_cbc(b("iv"), b("data")).hex()
    if kind == "sm2_sign":
        return crypt(op["private_key"], op["public_key"]).sign_with_sm3(b("data"))
    if kind == "sm2_verify":
        return "ok" if crypt(None, op["public_key"]).verify_with_sm3(op["signature"], b("data")) else "bad"
    if kind == "sm2_encrypt":
        return crypt(None, op["public_key"], mode=1).encrypt(b("data")).hex()
    if kind == "sm2_decrypt":
        return crypt(op["private_key"], op["public_key"], mode=1).decrypt(b("data")).hex()
    raise ValueError(f"unknown op {kind}")


print(json.dumps([run(op) for op in json.load(sys.stdin)]))
