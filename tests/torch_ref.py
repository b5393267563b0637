#!/usr/bin/env python3
"""PyTorch reference for `make bench-gpu`: the model xffl trains (LLaMA-2: RMSNorm,
interleaved RoPE, causal GQA attention, SwiGLU, no biases, untied output), the same
micro-batch and the same optimizer step (AdamW, decoupled weight decay except on norm
gains, global-norm clipping at 1.0), bf16 autocast over fp32 master weights, timed the
same way (whole steps, synchronised). Prints one JSON line per mode:

  {"bench": "torch_ref", "mode": "eager"|"compile", "model": ..., "value": tokens/s,
   "unit": "tokens/s", "mfu": ..., ...}

FLOPs per token and the peak match tests/gpu/bench_gpu.c: 6 N + 12 L D T over the bf16
dense peak (989 TFLOP/s for H100/H200 SXM; XFFL_PEAK_TFLOPS overrides). --recompute wraps
each layer in torch.utils.checkpoint (xffl's --recompute: only layer inputs kept).
peak_mem_gb: torch.cuda.max_memory_allocated over the run, in 1e9 bytes.
Exit codes: 0 measured (or SKIP printed: no torch / no GPU), 1 failed, 2 usage.
"""
import argparse
import json
import math
import os
import sys
import time

PRESETS = {  # dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab, max_seq_len (libckpt/model.c)
    "tiny": (64, 2, 4, 2, 160, 256, 64),
    "small": (288, 6, 6, 6, 768, 256, 256),
    "base": (768, 12, 12, 12, 2048, 256, 1024),
    "1b": (2048, 22, 32, 4, 5632, 32000, 2048),
    "7b": (4096, 32, 32, 32, 11008, 32000, 4096),
}


def build(torch, cfg, seq, recompute=False):
    nn, F = torch.nn, torch.nn.functional
    dim, n_layers, n_heads, n_kv, hidden, vocab, _ = cfg
    hd = dim // n_heads

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            x32 = x.float()
            return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight

    freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.outer(torch.arange(seq).float(), freqs)  # (T, hd/2)
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rope(x, cs, sn):  # x (B,T,h,hd): pairs (2i, 2i+1) rotated (Meta's layout), real arithmetic
        xp = x.float().reshape(*x.shape[:-1], -1, 2)
        x0, x1 = xp[..., 0], xp[..., 1]
        c, s = cs[None, :, None, :], sn[None, :, None, :]
        return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(3).type_as(x)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm, self.ffn_norm = RMSNorm(), RMSNorm()
            self.wq = nn.Linear(dim, n_heads * hd, bias=False)
            self.wk = nn.Linear(dim, n_kv * hd, bias=False)
            self.wv = nn.Linear(dim, n_kv * hd, bias=False)
            self.wo = nn.Linear(n_heads * hd, dim, bias=False)
            self.w1 = nn.Linear(dim, hidden, bias=False)
            self.w2 = nn.Linear(hidden, dim, bias=False)
            self.w3 = nn.Linear(dim, hidden, bias=False)

        def forward(self, x, cs, sn):
            B, T, _ = x.shape
            h = self.attention_norm(x)
            q = rope(self.wq(h).view(B, T, n_heads, hd), cs, sn)
            k = rope(self.wk(h).view(B, T, n_kv, hd), cs, sn)
            v = self.wv(h).view(B, T, n_kv, hd)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            if n_kv != n_heads:  # query head h reads kv head h // (H/KV)
                k = k.repeat_interleave(n_heads // n_kv, dim=1)
                v = v.repeat_interleave(n_heads // n_kv, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.wo(a.transpose(1, 2).reshape(B, T, dim))
            h = self.ffn_norm(x)
            return x + self.w2(F.silu(self.w1(h)) * self.w3(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_embeddings = nn.Embedding(vocab, dim)
            self.layers = nn.ModuleList(Block() for _ in range(n_layers))
            self.norm = RMSNorm()
            self.output = nn.Linear(dim, vocab, bias=False)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, std=0.02)

        def forward(self, idx):
            x = self.tok_embeddings(idx).float()
            T = idx.shape[1]
            for layer in self.layers:
                if recompute and self.training:
                    x = torch.utils.checkpoint.checkpoint(layer, x, self.cos[:T], self.sin[:T], use_reentrant=False)
                else:
                    x = layer(x, self.cos[:T], self.sin[:T])
            return self.output(self.norm(x))

    return Model()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--recompute", action="store_true")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("SKIP: no PyTorch in %s" % sys.executable)
        return 0
    if not torch.cuda.is_available():
        print("SKIP: no GPU visible to PyTorch")
        return 0
    cfg = PRESETS[a.model]
    dim, n_layers, _, _, _, vocab, _ = cfg
    dev = torch.device("cuda")
    torch.manual_seed(0)
    import torch.utils.checkpoint  # noqa: F401 (build's --recompute)
    torch.cuda.reset_peak_memory_stats()
    model = build(torch, cfg, a.seq, a.recompute).to(dev)
    decay = [p for n, p in model.named_parameters() if not n.endswith("norm.weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    fwd = torch.compile(model) if a.mode == "compile" else model

    def step(i):
        g = torch.Generator(device=dev).manual_seed(100 + i)
        x = torch.randint(0, vocab, (a.batch, a.seq), device=dev, generator=g)
        y = torch.randint(0, vocab, (a.batch, a.seq), device=dev, generator=g)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(x)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, vocab), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for i in range(a.warmup):
        step(i)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(a.steps):
        loss = step(a.warmup + i)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    tok_s = a.steps * a.batch * a.seq / secs
    n_nonemb = sum(p.numel() for n, p in model.named_parameters() if n != "tok_embeddings.weight")
    flops_tok = 6.0 * n_nonemb + 12.0 * n_layers * dim * a.seq
    name = torch.cuda.get_device_name(0)
    peak = float(os.environ.get("XFFL_PEAK_TFLOPS") or 0) or (
        989.0 if any(s in name for s in ("H100", "H200")) else 312.0 if "A100" in name else 0.0)
    print(json.dumps({
        "bench": "torch_ref", "mode": a.mode, "model": a.model, "value": round(tok_s, 1), "unit": "tokens/s",
        "mfu": round(tok_s * flops_tok / (peak * 1e12), 4) if peak else None,
        "tflops": round(tok_s * flops_tok / 1e12, 1), "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "step_ms": round(1000 * secs / a.steps, 2), "loss_last": round(float(loss), 4),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2), "recompute": int(a.recompute),
        "torch": torch.__version__, "device": name}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
