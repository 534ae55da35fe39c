"""The partner authentication schemes of docs/auth-schemes.md, written a second time with
Python's hmac/hashlib and the `gmssl` package, independently of the hub's Rust code, so the
hub's tests can check its signatures in both directions. Reads a JSON list of operations on
stdin, prints a JSON list of results.

Operations:
  {"op": "app_key_sign", "params": [[name, value], …], "digest": "sm3|hmac-sm3|sha256|hmac-sha256|md5",
   "secret": text, "sign_param": "sign", "exclude": [...], "skip_empty": bool, "key_case": "keep|lower|upper",
   "order": [...], "secret_mode": "append|wrap", "secret_param": "key", "upper": bool}
      → {"string": the sorted string, "signature": hex}
  {"op": "sigv4", "method", "path", "query", "headers": [[name, value], …], "body": text,
   "amz_date", "region", "service", "secret", "double_encode": bool}
      → {"canonical_request", "string_to_sign", "signature", "signed_headers"}
  {"op": "hub_v1", "method", "path", "query", "app_id", "timestamp", "nonce", "body": text,
   "headers": [[name, value], …], "secret"} → {"canonical", "signature"} (HMAC-SM3); "hub_v1_bytes"
   takes the body as hex in "body_hex" (e.g. an SM4-encrypted body)
  {"op": "sm2_sign", "private_key", "public_key", "data": text}  → r‖s hex
  {"op": "sm2_verify", "public_key", "signature", "data": text}  → "ok" | "bad"
  {"op": "canonical_json", "value": any}                         → text
  {"op": "sm2_canonical", "method", "path", "query", "app_id", "timestamp", "nonce", "body": text}
      → the sm2-cert header-placement canonical string
Public keys are x‖y hex (128 digits).
"""
import hashlib
import hmac
import json
import sys
import urllib.parse

from gmssl import func, sm2, sm3


def sm3_bytes(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


class _Sm3:
    """hashlib-shaped SM3 over gmssl, so hmac.new can use it."""

    digest_size = 32
    block_size = 64
    name = "sm3"

    def __init__(self, data=b""):
        self._data = bytes(data)

    def update(self, data):
        self._data += bytes(data)

    def copy(self):
        return _Sm3(self._data)

    def digest(self):
        return sm3_bytes(self._data)

    def hexdigest(self):
        return self.digest().hex()


def digest(name: str, data: bytes, key: bytes) -> bytes:
    if name == "hmac-sm3":
        return hmac.new(key, data, _Sm3).digest()
    if name == "hmac-sha256":
        return hmac.new(key, data, hashlib.sha256).digest()
    if name == "sm3":
        return sm3_bytes(data)
    if name == "sha256":
        return hashlib.sha256(data).digest()
    if name == "md5":
        return hashlib.md5(data).digest()
    raise ValueError(name)


def app_key_sign(op):
    case = {"keep": lambda s: s, "lower": str.lower, "upper": str.upper}[op.get("key_case", "keep")]
    sign_param = case(op.get("sign_param", "sign"))
    exclude = {case(x) for x in op.get("exclude", [])} | {sign_param}
    pairs = [(case(k), v) for k, v in op["params"]]
    pairs = [(k, v) for k, v in pairs if k not in exclude and not (op.get("skip_empty", True) and v == "")]
    order = [case(o) for o in op.get("order", [])]
    rank = lambda k: order.index(k) if k in order else len(order)
    pairs.sort(key=lambda kv: (rank(kv[0]), kv[0].encode(), kv[1].encode()))
    string = "&".join(f"{k}={v}" for k, v in pairs)
    secret = op["secret"].encode()
    name = op["digest"]
    if name.startswith("hmac-"):
        raw = digest(name, string.encode(), secret)
    elif op.get("secret_mode", "append") == "append":
        raw = digest(name, string.encode() + f"&{op.get('secret_param', 'key')}=".encode() + secret, b"")
    else:
        raw = digest(name, secret + string.encode() + secret, b"")
    sig = raw.hex()
    return {"string": string, "signature": sig.upper() if op.get("upper") else sig}


def _quote(s: str, safe: str) -> str:
    return urllib.parse.quote(s, safe=safe)


def canonical_query(raw: str) -> str:
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        norm = lambda s: _quote(urllib.parse.unquote(s), "-._~")
        pairs.append((norm(k), norm(v)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def sigv4(op):
    headers = sorted((k.lower(), " ".join(v.split())) for k, v in op["headers"])
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in headers)
    signed_headers = ";".join(k for k, _ in headers)
    path = op["path"] or "/"
    uri = _quote(path, "/-._~") if op.get("double_encode", True) else path
    payload = hashlib.sha256(op["body"].encode()).hexdigest()
    creq = "\n".join([op["method"], uri, canonical_query(op["query"]), canonical_headers, signed_headers, payload])
    date = op["amz_date"][:8]
    scope = f"{date}/{op['region']}/{op['service']}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", op["amz_date"], scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + op["secret"]).encode()
    for part in (date, op["region"], op["service"], "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return {"canonical_request": creq, "string_to_sign": sts, "signature": sig, "signed_headers": signed_headers}


def hub_v1(op):
    body = bytes.fromhex(op["body_hex"]) if "body_hex" in op else op["body"].encode()
    headers = sorted((k.lower(), v.strip()) for k, v in op.get("headers", []))
    lines = ["HMAC-SM3", op["method"].upper(), op["path"], canonical_query(op["query"]), op["app_id"],
             str(op["timestamp"]), op["nonce"], sm3_bytes(body).hex(),
             ";".join(k for k, _ in headers)] + [f"{k}:{v}" for k, v in headers]
    canonical = "\n".join(lines)
    return {"canonical": canonical, "signature": hmac.new(op["secret"].encode(), canonical.encode(), _Sm3).hexdigest()}


def crypt(private_key, public_key):
    # gmssl 3.2.2's constructor mangles keys that start with 0 or 4 (see gmssl_interop.py).
    c = sm2.CryptSM2(private_key=private_key, public_key="")
    c.public_key = public_key
    return c


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def run(op):
    kind = op["op"]
    if kind == "app_key_sign":
        return app_key_sign(op)
    if kind == "sigv4":
        return sigv4(op)
    if kind in ("hub_v1", "hub_v1_bytes"):
        return hub_v1(op)
    if kind == "sm2_sign":
        return crypt(op["private_key"], op["public_key"]).sign_with_sm3(op["data"].encode())
    if kind == "sm2_verify":
        ok = crypt(None, op["public_key"]).verify_with_sm3(op["signature"], op["data"].encode())
        return "ok" if ok else "bad"
    if kind == "canonical_json":
        return canonical_json(op["value"])
    if kind == "sm2_canonical":
        return "\n".join([op["method"].upper(), op["path"], canonical_query(op["query"]), op["app_id"],
                          str(op["timestamp"]), op["nonce"], sm3_bytes(op["body"].encode()).hex()])
    raise ValueError(f"unknown op {kind}")


print(json.dumps([run(op) for op in json.load(sys.stdin)], ensure_ascii=False))
