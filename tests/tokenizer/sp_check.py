"""SentencePiece's side of test-tokenizer.sh and bench/tokenizer.sh, run with /usr/bin/python3
and Debian's python3-sentencepiece (the C++ library) and python3-protobuf.

  sp_check.py train CORPUS_DIR PREFIX VOCAB [VARIANT]  LLaMA-style BPE model (VARIANTS below)
  sp_check.py texts OUT_DIR                        held-out texts: scripts, whitespace, bad bytes
  sp_check.py compare MODEL IDS_FILE FILE...       SentencePiece's ids == the lines of IDS_FILE
  sp_check.py shard MODEL SHARD FILE...            == the tokens of an xffl shard (files in order)
  sp_check.py llama VOCAB_JSON OUT.model           LLaMA-2's tokenizer.model from llama-tokenizer-js
  sp_check.py bad BASE_MODEL OUT_DIR               models xffl must refuse, one per way to be wrong
  sp_check.py decoded MODEL OUT FILE...            SentencePiece's decode(encode(FILE)) == OUT
  sp_check.py seeds OUT_DIR                        libFuzzer seeds for tests/fuzz/fuzz_tokenizer.c
  sp_check.py speed MODEL FILE...                  one thread, one call per file: MB/s as JSON
"""
import glob
import json
import os
import struct
import sys
import time

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb


# model variants: LLaMA's settings, then each SentencePiece option the encoder follows
VARIANTS = {
    "llama": {},
    "extra_ws": {"remove_extra_whitespaces": True},
    "no_fallback": {"byte_fallback": False, "user_defined_symbols": ["<mask>", "foo bar", "ab"]},
    "ws_suffix": {"treat_whitespace_as_suffix": True},
    "across_ws": {"split_by_whitespace": False},
    "no_prefix": {"add_dummy_prefix": False},
}


def train(corpus_dir, prefix, vocab, variant="llama"):
    files = sorted(glob.glob(os.path.join(corpus_dir, "*")))
    opts = dict(model_type="bpe", vocab_size=int(vocab), normalization_rule_name="identity",
                remove_extra_whitespaces=False, byte_fallback=True, split_digits=True,
                allow_whitespace_only_pieces=True, num_threads=1, minloglevel=2)
    opts.update(VARIANTS[variant])
    spm.SentencePieceTrainer.train(input=",".join(f for f in files if os.path.isfile(f)), model_prefix=prefix, **opts)


SAMPLES = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "こんにちは世界。日本語のテキストです。",
    "你好，世界！这是中文文本。",
    "مرحبا بالعالم، هذا نص عربي.",
    "Γειά σου κόσμε· ελληνικό κείμενο.",
    "שלום עולם, טקסט בעברית.",
    "नमस्ते दुनिया, यह हिंदी पाठ है।",
    "안녕하세요 세계",
    "emoji 🙂🚀👩‍👩‍👧 and flags 🇮🇹",
    "  two leading spaces, and   three inside, and trailing   ",
    "\ttabs\tand\nnewlines\n\n\nand\r\nCRLF\r\n",
    "          ten spaces then a word",
    "digits 1234567890 3.14159 2026-12-01 0xFF",
    "U+2581 itself: \u2581 and \u2581\u2581 twice",
    "nbsp\u00a0and ideographic\u3000space",
    "combining: e\u0301 a\u0308 n\u0303",
    "",
    " ",
    "x",
]
BAD_BYTES = [
    b"\xff\xfe invalid lead bytes",
    b"truncated \xe4\xb8",
    b"lone continuation \x80\x80 here",
    b"overlong \xc0\xaf and surrogate \xed\xa0\x80",
    b"past U+10FFFF \xf4\x90\x80\x80",
    bytes(range(256)),
]


def texts(out):
    os.makedirs(out, exist_ok=True)
    for i, s in enumerate(SAMPLES):
        open(os.path.join(out, "s%02d.txt" % i), "wb").write(s.encode())
    for i, b in enumerate(BAD_BYTES):
        open(os.path.join(out, "b%02d.bin" % i), "wb").write(b)
    # real documents the models were not trained on, with the samples mixed in
    docs = sorted(glob.glob("/usr/share/doc/*/copyright"))[:40]
    for i, d in enumerate(docs):
        body = open(d, "rb").read()[:6000]
        mix = SAMPLES[i % len(SAMPLES)].encode() + b"\n" + body + b"  " + SAMPLES[(i * 7) % len(SAMPLES)].encode()
        open(os.path.join(out, "d%02d.txt" % i), "wb").write(mix)


def ids_of(model, files):
    sp = spm.SentencePieceProcessor(model_file=model)
    return [sp.encode(open(f, "rb").read()) for f in files]


def report(files, ref, ours):
    bad = 0
    for f, r, o in zip(files, ref, ours):
        if r != o:
            bad += 1
            k = next((j for j in range(min(len(r), len(o))) if r[j] != o[j]), min(len(r), len(o)))
            print("MISMATCH %s: %d vs %d ids, first difference at %d: sentencepiece %s, xffl %s"
                  % (f, len(r), len(o), k, r[k:k + 6], o[k:k + 6]))
    print("%d of %d texts: same ids as SentencePiece" % (len(files) - bad, len(files)))
    return 1 if bad else 0


def compare(model, ids_file, files):
    ours = [[int(x) for x in line.split()] for line in open(ids_file).read().split("\n")[:len(files)]]
    return report(files, ids_of(model, files), ours)


def shard(model, path, files):
    raw = open(path, "rb").read()
    head = struct.unpack("<3i", raw[:12])
    toks = list(struct.unpack("<%dH" % head[2], raw[1024:1024 + 2 * head[2]]))
    ref = [t for ids in ids_of(model, files) for t in ids]
    ok = head[:2] == (20240520, 1) and toks == ref
    print("shard %s: %d tokens, %s" % (path, len(toks), "same as SentencePiece" if ok else "DIFFERENT"))
    return 0 if ok else 1


def llama(vocab_json, out):
    """LLaMA-2's tokenizer.model rebuilt from llama-tokenizer-js: the merge that makes a
    piece first gives it its score (earlier = higher), as SentencePiece ranks merges."""
    d = json.load(open(vocab_json))
    rank = {}
    for r, m in enumerate(d["merges"]):
        a, b = m.split(" ")
        rank.setdefault(a + b, r)
    m = pb.ModelProto()
    T = pb.ModelProto.SentencePiece
    for i, piece in enumerate(d["vocab"]):
        p = m.pieces.add()
        p.piece = piece
        p.score = 0.0
        if i == 0:
            p.type = T.UNKNOWN
        elif i in (1, 2):
            p.type = T.CONTROL
        elif 3 <= i <= 258:
            p.type = T.BYTE
        else:
            p.score = -float(rank.get(piece, 1000000))
    t = m.trainer_spec
    t.model_type = pb.TrainerSpec.BPE
    t.vocab_size = len(d["vocab"])
    t.byte_fallback = True
    t.split_digits = True
    t.allow_whitespace_only_pieces = True
    n = m.normalizer_spec
    n.name = "identity"
    n.add_dummy_prefix = True
    n.remove_extra_whitespaces = False
    n.escape_whitespaces = True
    open(out, "wb").write(m.SerializeToString())


def bad(base, out):
    os.makedirs(out, exist_ok=True)
    src = open(base, "rb").read()

    def write(name, m):
        open(os.path.join(out, name), "wb").write(m.SerializeToString())

    def load():
        m = pb.ModelProto()
        m.ParseFromString(src)
        return m

    m = load(); m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM; write("unigram.model", m)
    m = load(); m.normalizer_spec.name = "nmt_nfkc"; write("nfkc.model", m)
    m = load(); m.normalizer_spec.precompiled_charsmap = b"\x01\x02\x03\x04"; write("charsmap.model", m)
    m = load(); m.trainer_spec.ClearField("model_type"); write("no_type.model", m)
    m = load()
    for i in range(65537 - len(m.pieces)):
        p = m.pieces.add(); p.piece = "x%d" % i; p.score = -1e6
    write("vocab65537.model", m)
    m = load(); m.pieces[0].type = pb.ModelProto.SentencePiece.NORMAL; write("no_unk.model", m)
    m = load(); m.trainer_spec.byte_fallback = False; write("bytes_no_fallback.model", m)
    m = load(); m.pieces[300].piece = m.pieces[301].piece; write("duplicate.model", m)
    m = load(); m.pieces[3].piece = "<0x0g>"; write("bad_byte.model", m)
    open(os.path.join(out, "truncated.model"), "wb").write(src[: len(src) // 2])
    open(os.path.join(out, "empty.model"), "wb").write(b"")
    open(os.path.join(out, "garbage.model"), "wb").write(b"\xff" * 64)
    # piece score sent as a varint instead of a float
    open(os.path.join(out, "wiretype.model"), "wb").write(b"\x0a\x05\x0a\x01a\x10\x01" + src)


def decoded(model, out_file, files):
    """decode(encode(text)) by SentencePiece, concatenated, against xffl's in out_file"""
    sp = spm.SentencePieceProcessor(model_file=model)
    ref = b"".join(sp.decode(sp.encode(open(f, "rb").read())).encode() for f in files)
    ok = ref == open(out_file, "rb").read()
    print("decode(encode(text)) of %d texts: %s" % (len(files), "same as SentencePiece" if ok else "DIFFERENT"))
    return 0 if ok else 1


def seeds(out):
    """libFuzzer seeds for tests/fuzz/fuzz_tokenizer.c: [n][n bytes of text][model], small
    models (vocabulary 600 or 400) in each variant"""
    import tempfile
    os.makedirs(out, exist_ok=True)
    texts = [s.encode() for s in SAMPLES[:12]] + BAD_BYTES[:4]
    with tempfile.TemporaryDirectory() as tmp:
        for k, v in enumerate(sorted(VARIANTS)):
            prefix = os.path.join(tmp, v)
            vocab = 600 if VARIANTS[v].get("byte_fallback", True) else 400
            train("/usr/share/common-licenses", prefix, vocab, v)
            model = open(prefix + ".model", "rb").read()
            t = texts[k % len(texts)][:255]
            open(os.path.join(out, "seed-" + v), "wb").write(bytes([len(t)]) + t + model)


def speed(model, files):
    sp = spm.SentencePieceProcessor(model_file=model, num_threads=1)
    data = [open(f, "rb").read() for f in files]
    t = time.perf_counter()
    n = sum(len(sp.encode(d)) for d in data)
    dt = time.perf_counter() - t
    size = sum(len(d) for d in data)
    print(json.dumps({"mb_s": round(size / dt / 1e6, 3), "tokens": n, "bytes": size, "seconds": round(dt, 4)}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "train": train(*args)
    elif cmd == "texts": texts(*args)
    elif cmd == "compare": sys.exit(compare(args[0], args[1], args[2:]))
    elif cmd == "shard": sys.exit(shard(args[0], args[1], args[2:]))
    elif cmd == "llama": llama(*args)
    elif cmd == "bad": bad(*args)
    elif cmd == "decoded": sys.exit(decoded(args[0], args[1], args[2:]))
    elif cmd == "seeds": seeds(*args)
    elif cmd == "speed": speed(args[0], args[1:])
    else: sys.exit(__doc__)
