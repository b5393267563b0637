"""Crafted HDF5 parts for tests/it/test-hostile-parts.sh (issue 14, "crashes on damaged HDF5").
usage: hostile_part.py chunk SRC OUT DATASET N  -- the dataset's layout message declares chunks whose
           last dimension is N (a 32x64 tensor with 32x65600 chunks crashed H5Dread)
       hostile_part.py forge MANIFEST PART NEWPART -- PART replaced by NEWPART: the object renamed
           to its digest, the COMMIT's (or INDEX's, and LATEST) object line and name rewritten (what a
           facility holding a valid key can send); prints the new manifest path
Needs /usr/bin/python3 with h5py."""
import hashlib
import os
import shutil
import struct
import sys

import h5py


M32 = 0xFFFFFFFF


def _rot(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


def lookup3(data):
    """HDF5's metadata checksum (H5_checksum_lookup3, initval 0)."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n) & M32
    i = 0
    while n > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & M32
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & M32
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & M32
        a = (a - c) & M32; a ^= _rot(c, 4); c = (c + b) & M32
        b = (b - a) & M32; b ^= _rot(a, 6); a = (a + c) & M32
        c = (c - b) & M32; c ^= _rot(b, 8); b = (b + a) & M32
        a = (a - c) & M32; a ^= _rot(c, 16); c = (c + b) & M32
        b = (b - a) & M32; b ^= _rot(a, 19); a = (a + c) & M32
        c = (c - b) & M32; c ^= _rot(b, 4); b = (b + a) & M32
        n -= 12
        i += 12
    if n == 0:
        return c
    tail = data[i:i + n] + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & M32
    b = (b + int.from_bytes(tail[4:8], "little")) & M32
    c = (c + int.from_bytes(tail[8:12], "little")) & M32
    c ^= b; c = (c - _rot(b, 14)) & M32
    a ^= c; a = (a - _rot(c, 11)) & M32
    b ^= a; b = (b - _rot(a, 25)) & M32
    c ^= b; c = (c - _rot(b, 16)) & M32
    a ^= c; a = (a - _rot(c, 4)) & M32
    b ^= a; b = (b - _rot(a, 14)) & M32
    c ^= b; c = (c - _rot(b, 24)) & M32
    return c


def rechecksum(b, at):
    """Recomputes the checksum of the version 2 object header (chunk 0) holding offset at."""
    p = b.rfind(b"OHDR", 0, at)
    assert p >= 0 and b[p + 4] == 2, "no version 2 object header before the layout message"
    flags, q = b[p + 5], p + 6
    q += (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    w = 1 << (flags & 3)
    end = q + w + int.from_bytes(b[q:q + w], "little")
    assert p < at < end, "the layout message is not in the header's first chunk"
    b[end:end + 4] = lookup3(bytes(b[p:end])).to_bytes(4, "little")


mode = sys.argv[1]
if mode == "chunk":
    src, out, name, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    with h5py.File(src, "r") as h:
        ch, es = h[name].chunks, h[name].dtype.itemsize
        addr = h[name].id.get_offset()  # None for chunked; the layout message is found by bytes
    b = bytearray(open(src, "rb").read())
    # HDF5 1.8 format (layout message version 3): the chunk dims (4 bytes each) then the
    # element size; several datasets of one shape share the pattern: change every one
    pat = b"".join(struct.pack("<I", c) for c in ch) + struct.pack("<I", es)
    i = b.find(pat)
    found = 0
    while i >= 0:
        b[i + 4 * (len(ch) - 1):i + 4 * len(ch)] = struct.pack("<I", n)
        i = b.find(pat, i + 1)
        found += 1
    # HDF5 1.10 format (version 4, what xffl writes): 4, 2 (chunked), flags, rank + 1,
    # the bytes per dimension, then the chunk dims and the element size in that width;
    # the object header's checksum (Jenkins lookup3) is recomputed after the change
    for w in range(1, 9):
        if any(v >= 1 << (8 * w) for v in list(ch) + [es]):
            continue
        pat = bytes([len(ch) + 1, w]) + b"".join(v.to_bytes(w, "little") for v in list(ch) + [es])
        i = b.find(pat)
        while i >= 0:
            if b[i - 3:i - 1] == b"\x04\x02":
                assert n < 1 << (8 * w), "N = %d does not fit the layout's %d-byte dimensions" % (n, w)
                at = i + 2 + w * (len(ch) - 1)
                b[at:at + w] = n.to_bytes(w, "little")
                rechecksum(b, i)
                found += 1
            i = b.find(pat, i + 1)
    assert found, "layout message not found"
    open(out, "wb").write(bytes(b))
elif mode == "forge":
    commit, part, newpart = sys.argv[2:5]
    d = os.path.dirname(commit)
    data = open(newpart, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    old = os.path.basename(part)
    new = old[:len("part-000-")] + sha[:12] + ".h5"
    os.remove(part)
    open(os.path.join(d, new), "wb").write(data)
    lines = open(commit).read().split("\n")
    for k, l in enumerate(lines):
        if l.startswith("object ") and l.split(" ")[1].endswith(old):
            key = l.split(" ")[1][:-len(old)] + new
            lines[k] = "object %s %d %s" % (key, len(data), sha)
    text = "\n".join(lines).encode()
    os.remove(commit)
    stem = os.path.basename(commit).split("-")[0]
    digest = hashlib.sha256(text).hexdigest()
    out = os.path.join(d, stem + "-" + digest[:12])
    open(out, "wb").write(text)
    if stem == "INDEX":  # versions/vNNNNNN/INDEX-*: LATEST names it with its digest
        root = os.path.dirname(os.path.dirname(d))
        v = os.path.basename(d)
        open(os.path.join(root, "LATEST"), "w").write("%s INDEX-%s %s\n" % (v, digest[:12], digest))
    print(out)
else:
    sys.exit("unknown mode " + mode)
