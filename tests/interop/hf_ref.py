#!/usr/bin/env python3
"""Hugging Face side of tests/it/test-hf.sh, independent of xffl's C code:

  make DIR [--dtype fp32|fp16|bf16] [--shards N] [--seed S] [--config k=v,...] [--tied]
      writes a random-weight LLaMA checkpoint in transformers' layout (config.json,
      model.safetensors or shards + model.safetensors.index.json), with its own
      safetensors writer (no safetensors/transformers package needed)
  logits DIR OUT.f32 ID...
      next-token logits [T, vocab] of the sequence by a PyTorch forward pass written
      from transformers' modeling_llama (rotate_half RoPE, repeat_kv GQA, RMSNorm,
      SwiGLU), in float64
  compare A.f32 B.f32 TOL
      max |a - b| / max |a| <= TOL
  same DIR_A DIR_B [--bf16]
      every tensor of A equals B bit for bit (--bf16: B is A rounded to bfloat16)
  damage DIR KIND
      truncate | overlap | dtype | shape | hidden | layers | morelayers | headlen
Exit 0 ok, 1 mismatch, 2 usage.
"""
import json
import math
import os
import struct
import sys

import torch

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
NAMES = {"fp32": "F32", "fp16": "F16", "bf16": "BF16"}


def write_st(path, tensors):
    """tensors: list of (name, torch tensor) in file order."""
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors:
        dt = [k for k, v in DT.items() if v == t.dtype][0]
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + en])
        out[name] = (e["dtype"], torch.frombuffer(raw, dtype=torch.uint8).view(DT[e["dtype"]]).reshape(e["shape"])
                     if raw else torch.zeros(e["shape"], dtype=DT[e["dtype"]]))
    return out, header


def read_dir(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    w = {}
    for f in files:
        w.update(read_st(os.path.join(d, f))[0])
    return json.load(open(os.path.join(d, "config.json"))), w


def cmd_make(d, dtype="fp32", shards=1, seed=1, config="", tied=False):
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 48,
           "intermediate_size": 136, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 300, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 50000.0,
           "hidden_act": "silu", "tie_word_embeddings": tied, "torch_dtype": "float32"}
    for kv in filter(None, config.split(",")):
        k, v = kv.split("=")
        cfg[k] = float(v) if "." in v or "e" in v else int(v)
    g = torch.Generator().manual_seed(seed)
    D, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, KV, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    hd = D // H

    def mat(r, c):
        return torch.randn(r, c, generator=g) / math.sqrt(c)

    def gain(n):
        return 1 + 0.2 * torch.randn(n, generator=g)

    t = [("model.embed_tokens.weight", torch.randn(V, D, generator=g))]
    for i in range(L):
        p = f"model.layers.{i}."
        t += [(p + "input_layernorm.weight", gain(D)), (p + "self_attn.q_proj.weight", mat(H * hd, D)),
              (p + "self_attn.k_proj.weight", mat(KV * hd, D)), (p + "self_attn.v_proj.weight", mat(KV * hd, D)),
              (p + "self_attn.o_proj.weight", mat(D, H * hd)), (p + "post_attention_layernorm.weight", gain(D)),
              (p + "mlp.gate_proj.weight", mat(F, D)), (p + "mlp.up_proj.weight", mat(F, D)),
              (p + "mlp.down_proj.weight", mat(D, F))]
    t.append(("model.norm.weight", gain(D)))
    if not tied:
        t.append(("lm_head.weight", mat(V, D)))
    t = [(n, x.to(DT[NAMES[dtype]])) for n, x in t]
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    if shards == 1:
        write_st(os.path.join(d, "model.safetensors"), t)
        return
    per = math.ceil(len(t) / shards)
    wm = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = t[s * per:(s + 1) * per]
        write_st(os.path.join(d, name), part[::-1])  # another order than the index's
        wm.update({n: name for n, _ in part})
    json.dump({"metadata": {"total_size": 0}, "weight_map": wm},
              open(os.path.join(d, "model.safetensors.index.json"), "w"))


def forward(cfg, w, ids):
    """transformers' LlamaForCausalLM.forward, written out (float64)."""
    D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd, eps, theta = D // H, cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)
    W = {k: v.double() for k, (_, v) in w.items()}
    T = len(ids)

    def rmsnorm(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate_half(x):
        return torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), dim=-1)

    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).double() / hd))
    freqs = torch.outer(torch.arange(T).double(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(L):
        p = f"model.layers.{i}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, H, hd).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k[:, None].expand(KV, H // KV, T, hd).reshape(H, T, hd)  # repeat_kv
        v = v[:, None].expand(KV, H // KV, T, hd).reshape(H, T, hd)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, D) @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"])
        gate, up = h @ W[p + "mlp.gate_proj.weight"].T, h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def cmd_logits(d, out, *ids):
    cfg, w = read_dir(d)
    forward(cfg, w, [int(i) for i in ids]).float().numpy().tofile(out)


def cmd_compare(a, b, tol):
    import numpy as np
    x, y = np.fromfile(a, dtype=np.float32), np.fromfile(b, dtype=np.float32)
    if x.shape != y.shape:
        print(f"compare: {a} has {x.size} values, {b} {y.size}")
        return 1
    rel = float(np.abs(x - y).max() / np.abs(x).max())
    print(f"compare: {x.size} logits, max |diff| / max |logit| = {rel:.3g} (tolerance {tol})")
    return 0 if rel <= float(tol) else 1


def cmd_same(a, b, mode=""):
    ca, wa = read_dir(a)
    cb, wb = read_dir(b)
    if ca.get("tie_word_embeddings"):
        wa = dict(wa, **{"lm_head.weight": wa["model.embed_tokens.weight"]})
    if set(wa) != set(wb):
        print(f"same: tensor names differ: {sorted(set(wa) ^ set(wb))}")
        return 1
    for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta"):
        if float(ca.get(k, 0)) != float(cb.get(k, 0)) and not (k == "rms_norm_eps" and abs(ca[k] - cb[k]) < 1e-12):
            print(f"same: config {k}: {ca.get(k)} vs {cb.get(k)}")
            return 1
    for n in sorted(wa):
        x, y = wa[n][1], wb[n][1]
        want = x.float().to(torch.bfloat16) if mode == "--bf16" else x.float()
        got = y if mode == "--bf16" else y.float()
        if want.shape != got.shape or want.dtype != got.dtype or not torch.equal(want, got):
            print(f"same: {n} differs ({wa[n][0]} {list(x.shape)} vs {wb[n][0]} {list(y.shape)})")
            return 1
    print(f"same: {len(wa)} tensors equal{' after bf16 rounding' if mode else ''}")
    return 0


def cmd_damage(d, kind):
    path = os.path.join(d, "model.safetensors")
    cfgp = os.path.join(d, "config.json")
    if kind in ("hidden", "layers", "morelayers"):
        cfg = json.load(open(cfgp))
        if kind == "hidden":
            cfg["hidden_size"] = 64
        else:
            cfg["num_hidden_layers"] = 1 if kind == "layers" else 3
        json.dump(cfg, open(cfgp, "w"))
        return 0
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    if kind == "truncate":
        open(path, "wb").write(data[:-10])
        return 0
    if kind == "headlen":
        open(path, "wb").write(struct.pack("<Q", len(data)) + data[8:])
        return 0
    name = "model.layers.0.self_attn.k_proj.weight"
    e = header[name]
    if kind == "overlap":  # k_proj starts 8 bytes early, ends 8 early: overlaps whatever precedes it
        e["data_offsets"] = [e["data_offsets"][0] - 8, e["data_offsets"][1] - 8]
    elif kind == "dtype":
        e["dtype"] = "F16" if e["dtype"] != "F16" else "F32"
    elif kind == "shape":
        e["shape"] = [e["shape"][0] * 2, e["shape"][1]]
    else:
        print(f"damage: unknown kind {kind}")
        return 2
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + body)
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "make":
        kw = {}
        pos = [a for a in args if not a.startswith("--")]
        for i, a in enumerate(args):
            if a == "--tied":
                kw["tied"] = True
            elif a.startswith("--"):
                kw[a[2:]] = args[i + 1] if a != "--shards" and a != "--seed" else int(args[i + 1])
                pos.remove(args[i + 1])
        return cmd_make(pos[0], **kw) or 0
    return {"logits": cmd_logits, "compare": cmd_compare, "same": cmd_same, "damage": cmd_damage}[cmd](*args) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
