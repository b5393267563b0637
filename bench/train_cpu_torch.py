#!/usr/bin/python3
"""PyTorch reference for bench/train_cpu.sh: the same LLaMA-2 model as xffl's preset
(RMSNorm, RoPE in Meta's pair layout, SwiGLU, untied output), the same batch, sequence
length and thread count, AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 except on
norm gains, gradient clipping at 1.0: xffl's defaults), eager mode. Modes: fp32, and bf16
autocast (torch.autocast('cpu', dtype=torch.bfloat16): oneDNN bf16 GEMMs, fp32 master
weights, what a PyTorch user gets for mixed precision on a CPU). Timed like xffl's
bench: median step time over STEPS steps after WARMUP steps; a step is zero_grad,
forward, backward, clipping and the optimizer step. One JSON line per mode.

usage: train_cpu_torch.py DIM LAYERS HEADS KV_HEADS HIDDEN VOCAB B T THREADS STEPS MODES...
"""
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope(x, cos, sin):
    # x: (B, T, h, hd); pairs (2i, 2i+1) rotated by t * theta^(-2i/hd)
    xr = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = xr[..., 0], xr[..., 1]
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class Block(nn.Module):
    def __init__(self, d, h, kv, hidden, eps):
        super().__init__()
        self.h, self.kv, self.hd = h, kv, d // h
        self.attention_norm = RMSNorm(d, eps)
        self.wq = nn.Linear(d, h * self.hd, bias=False)
        self.wk = nn.Linear(d, kv * self.hd, bias=False)
        self.wv = nn.Linear(d, kv * self.hd, bias=False)
        self.wo = nn.Linear(h * self.hd, d, bias=False)
        self.ffn_norm = RMSNorm(d, eps)
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        xn = self.attention_norm(x)
        q = rope(self.wq(xn).view(B, T, self.h, self.hd), cos, sin)
        k = rope(self.wk(xn).view(B, T, self.kv, self.hd), cos, sin)
        v = self.wv(xn).view(B, T, self.kv, self.hd)
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, dim=2)
            v = v.repeat_interleave(self.h // self.kv, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd) + mask
        p = F.softmax(s.float(), dim=-1).type_as(q)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.wo(o)
        xn = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(xn)) * self.w3(xn))


class Llama(nn.Module):
    def __init__(self, d, L, h, kv, hidden, V, T, eps=1e-5, theta=10000.0):
        super().__init__()
        self.tok_embeddings = nn.Embedding(V, d)
        self.layers = nn.ModuleList(Block(d, h, kv, hidden, eps) for _ in range(L))
        self.norm = RMSNorm(d, eps)
        self.output = nn.Linear(d, V, bias=False)
        hd = d // h
        freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
        self.register_buffer("cos", ang.cos().float()[None, :, None, :], persistent=False)
        self.register_buffer("sin", ang.sin().float()[None, :, None, :], persistent=False)
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1), persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, tgt):
        T = idx.shape[1]
        x = self.tok_embeddings(idx)
        cos, sin, mask = self.cos[:, :T], self.sin[:, :T], self.mask[:T, :T]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        logits = self.output(self.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1))


def main():
    a = sys.argv[1:]
    d, L, h, kv, hidden, V, B, T, threads, steps = (int(x) for x in a[:10])
    modes = a[10:] or ["fp32", "bf16"]
    torch.set_num_threads(threads)
    warmup = 3
    for mode in modes:
        torch.manual_seed(1)
        model = Llama(d, L, h, kv, hidden, V, T)
        decay = [p for n, p in model.named_parameters() if p.dim() == 2]
        nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                                lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
        g = torch.Generator().manual_seed(2)
        idx = torch.randint(0, V, (B, T), generator=g)
        tgt = torch.randint(0, V, (B, T), generator=g)
        times, cpu = [], []
        for s in range(warmup + steps):
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            if mode == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model(idx, tgt)
            else:
                loss = model(idx, tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if s >= warmup:
                times.append(dt)
                cpu.append(dc)
        med = statistics.median(times)
        print(json.dumps({"bench": "train_cpu_torch", "mode": mode if mode == "fp32" else "bf16_autocast",
                          "preset_dims": [d, L, h, kv, hidden, V], "batch": B, "seq_len": T, "threads": threads,
                          "tokens_per_s": round(B * T / med), "step_s": round(med, 4),
                          "cpu_step_s": round(statistics.median(cpu), 4), "steps": steps,
                          "loss": round(float(loss), 4), "torch": torch.__version__}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
