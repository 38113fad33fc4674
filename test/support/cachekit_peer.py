"""A Python stand-in for a cachekit-py service in interop mode, written from the protocol text (stdlib only).

Independent of the TypeScript code under test: Python's own int/float/bytes/str types, its own canonical MessagePack
encoder and decoder, blake2b from hashlib, HKDF from hmac. Reads {"cases": [...]} on stdin, writes {"results": [...]}.
Tagged JSON as protocol-vectors/interop-mode.json: {"$int": "..."}, {"$float": "..."}, {"$bytes": "hex"}, {"$set": [...]}.
"""
import datetime
import hashlib
import hmac
import json
import math
import re
import struct
import sys
import uuid

SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class PySet(list):
    """A set argument (elements kept as given; the encoder sorts and dedupes by encoded bytes)."""


def untag(v):
    if isinstance(v, list):
        return [untag(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (k, raw), = v.items()
            if k == "$int":
                return int(raw)
            if k == "$float":
                return float(raw)
            if k == "$bytes":
                return bytes.fromhex(raw)
            if k == "$set":
                return PySet(untag(x) for x in raw)
            if k == "$datetime":
                dt = datetime.datetime.fromisoformat(raw)
                if dt.tzinfo is None:
                    raise ValueError("naive datetime")
                return dt
            if k == "$uuid":
                return uuid.UUID(raw)
        return {k: untag(x) for k, x in v.items()}
    return v


def tag(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {"$int": str(v)}
    if isinstance(v, float):
        return {"$float": repr(v)}
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, list):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        return {k: tag(x) for k, x in v.items()}
    raise TypeError(type(v).__name__)


def header(n, fix, fix_max, t16, t32):
    if n <= fix_max:
        return bytes([fix | n])
    if n <= 0xFFFF:
        return bytes([t16]) + struct.pack(">H", n)
    return bytes([t32]) + struct.pack(">I", n)


def enc_int(n):
    if n < -(2**63) or n > 2**64 - 1:
        raise ValueError("integer out of range")
    if 0 <= n <= 0x7F:
        return bytes([n])
    if -32 <= n < 0:
        return struct.pack(">b", n)
    if n > 0:
        for tag_, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF), (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
            if n <= top:
                return bytes([tag_]) + struct.pack(fmt, n)
    for tag_, fmt, low in ((0xD0, ">b", -(2**7)), (0xD1, ">h", -(2**15)), (0xD2, ">i", -(2**31)), (0xD3, ">q", -(2**63))):
        if n >= low:
            return bytes([tag_]) + struct.pack(fmt, n)
    raise ValueError("unreachable")


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def enc(v, args):
    if isinstance(v, datetime.datetime):
        if args:  # integer microseconds (floored), then one float64 division
            return enc((v - EPOCH) // datetime.timedelta(microseconds=1) / 10**6, True)
        return enc({"__datetime__": True, "value": v.astimezone(datetime.timezone.utc).isoformat()}, False)
    if isinstance(v, uuid.UUID):
        return enc(str(v), args)
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return enc_int(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("NaN/Infinity")
        if args and v == int(v) and -(2.0**63) <= v < 2.0**64:
            return enc_int(int(v))
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return (bytes([0xD9, len(b)]) if len(b) <= 0xFF else header(len(b), 0, -1, 0xDA, 0xDB)) + b
    if isinstance(v, bytes):
        n = len(v)
        return (bytes([0xC4, n]) if n <= 0xFF else bytes([0xC5]) + struct.pack(">H", n) if n <= 0xFFFF else bytes([0xC6]) + struct.pack(">I", n)) + v
    if isinstance(v, PySet):
        items = sorted(set(enc(x, args) for x in v))
        return header(len(items), 0x90, 15, 0xDC, 0xDD) + b"".join(items)
    if isinstance(v, list):
        return header(len(v), 0x90, 15, 0xDC, 0xDD) + b"".join(enc(x, args) for x in v)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-8"))
        return header(len(v), 0x80, 15, 0xDE, 0xDF) + b"".join(enc(k, args) + enc(v[k], args) for k in keys)
    raise TypeError(type(v).__name__)


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise ValueError("truncated")
        out = self.b[self.p:self.p + n]
        self.p += n
        return out

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self):
        t = self.take(1)[0]
        if t <= 0x7F:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0xA0 <= t <= 0xBF:
            return self.take(t & 0x1F).decode("utf-8")
        if 0x90 <= t <= 0x9F:
            return [self.value() for _ in range(t & 0x0F)]
        if 0x80 <= t <= 0x8F:
            return self.map(t & 0x0F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if t in simple:
            return simple[t]
        ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
        if t in ints:
            return self.u(ints[t])
        if t == 0xCA:
            return float(self.u(">f"))
        if t == 0xCB:
            return self.u(">d")
        if t in (0xC4, 0xC5, 0xC6):
            return bytes(self.take(self.u({0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[t])))
        if t in (0xD9, 0xDA, 0xDB):
            return self.take(self.u({0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}[t])).decode("utf-8")
        if t in (0xDC, 0xDD):
            return [self.value() for _ in range(self.u(">H" if t == 0xDC else ">I"))]
        if t in (0xDE, 0xDF):
            return self.map(self.u(">H" if t == 0xDE else ">I"))
        raise ValueError("type 0x%x not allowed" % t)

    def map(self, n):
        out = {}
        for _ in range(n):
            k = self.value()
            out[k] = self.value()
        return out


def decode(b):
    r = Reader(b)
    v = r.value()
    if r.p != len(b):
        raise ValueError("trailing bytes")
    return v


def hkdf_sha256(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def tenant_key(master, tenant, domain=b"encryption"):
    t = tenant.encode("utf-8")
    salt = b"cachekit_v1_" + bytes([len(domain)]) + domain + struct.pack(">H", len(t)) + t
    return hkdf_sha256(master, salt, domain)


def aad(tenant, cache_key, fmt, compressed):
    out = b"\x03"
    for f in (tenant, cache_key, fmt, "True" if compressed else "False"):
        f = f.encode("utf-8")
        out += struct.pack(">I", len(f)) + f
    return out


def key(namespace, operation, args):
    for kind, seg in (("namespace", namespace), ("operation", operation)):
        if not SEGMENT.fullmatch(seg) or ".." in seg or (kind == "namespace" and seg in ("ns", "nsapi")):
            raise ValueError("bad " + kind)
    canonical = enc(args, True)
    return namespace + ":" + operation + ":" + hashlib.blake2b(canonical, digest_size=32).hexdigest(), canonical


def run(case):
    op = case["op"]
    try:
        if op == "key":
            k, canonical = key(case["namespace"], case["operation"], untag(case["args"]))
            return {"key": k, "canonical_hex": canonical.hex()}
        if op == "encode":
            return {"hex": enc(untag(case["value"]), False).hex()}
        if op == "decode":
            return {"value": tag(decode(bytes.fromhex(case["hex"])))}
        if op == "tenant_key":
            return {"key_hex": tenant_key(bytes.fromhex(case["master_hex"]), case["tenant"]).hex()}
        if op == "aad":
            return {"hex": aad(case["tenant"], case["cache_key"], case["format"], case["compressed"]).hex()}
        raise ValueError("unknown op " + op)
    except (ValueError, TypeError, UnicodeError, OverflowError) as error:
        return {"error": "%s: %s" % (type(error).__name__, error)}


if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump({"results": [run(c) for c in request["cases"]]}, sys.stdout)
