#!/usr/bin/env bash
# Peak memory of `init --from DIR` on Hugging Face checkpoints shaped like LLaMA-2 7B
# (dim 4096, hidden 11008, 32 heads, vocab 32000, bf16) with only a few layers: the
# import streams one tensor at a time, so the peak follows the largest tensor (the
# 32000 x 4096 embedding, 524 MB as float32), not the model. Two depths are measured:
# equal peaks for different model sizes show it. One JSON line:
#   {"bench":"hf_import","value":<peak MiB, deepest>,"unit":"MiB","largest_tensor_mib":..,
#    "runs":[{"layers":L,"model_fp32_mib":..,"peak_rss_mib":..,"seconds":..},...]}
# XFFL_BENCH_HF_LAYERS="2 4" sets the depths.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${XFFL_BUILD:-build}
X=$PWD/$B/xffl
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/bin/python3 - "$X" "$T" ${XFFL_BENCH_HF_LAYERS:-2 4} <<'EOF'
import json, os, struct, subprocess, sys, time
import numpy as np

xffl, tmp, depths = sys.argv[1], sys.argv[2], [int(a) for a in sys.argv[3:]]
D, F, V, H = 4096, 11008, 32000, 32
rng = np.random.default_rng(0)
block = (rng.standard_normal(1 << 22, dtype=np.float32) * 0.02).view(np.uint32) >> 16
block = block.astype(np.uint16)  # bf16 bit patterns, all finite


def write_st(path, tensors):
    header, at = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [at, at + n]}
        at += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in tensors:
            left = int(np.prod(shape))
            while left:
                k = min(left, block.size)
                f.write(block[:k].tobytes())
                left -= k


runs = []
for L in depths:
    d = os.path.join(tmp, f"hf{L}")
    os.makedirs(d)
    cfg = {"model_type": "llama", "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": H, "vocab_size": V, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    t = [("model.embed_tokens.weight", (V, D))]
    for i in range(L):
        p = f"model.layers.{i}."
        t += [(p + "input_layernorm.weight", (D,)), (p + "self_attn.q_proj.weight", (D, D)),
              (p + "self_attn.k_proj.weight", (D, D)), (p + "self_attn.v_proj.weight", (D, D)),
              (p + "self_attn.o_proj.weight", (D, D)), (p + "post_attention_layernorm.weight", (D,)),
              (p + "mlp.gate_proj.weight", (F, D)), (p + "mlp.up_proj.weight", (F, D)),
              (p + "mlp.down_proj.weight", (D, F))]
    t += [("model.norm.weight", (D,)), ("lm_head.weight", (V, D))]
    write_st(os.path.join(d, "model.safetensors"), t)
    params = sum(int(np.prod(s)) for _, s in t)
    t0 = time.time()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", xffl, "init", "--quiet", "--store", os.path.join(tmp, f"s{L}"),
                        "--from", d], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    secs = time.time() - t0
    peak = int(r.stderr.strip().splitlines()[-1])  # KiB: GNU time's maximum resident set size
    runs.append({"layers": L, "model_fp32_mib": round(params * 4 / 2**20), "file_bf16_mib": round(params * 2 / 2**20),
                 "peak_rss_mib": round(peak / 1024), "seconds": round(secs, 1)})
    subprocess.run(["rm", "-rf", d, os.path.join(tmp, f"s{L}")], check=True)
print(json.dumps({"bench": "hf_import", "value": runs[-1]["peak_rss_mib"], "unit": "MiB",
                  "largest_tensor_mib": round(V * D * 4 / 2**20), "runs": runs}))
EOF
