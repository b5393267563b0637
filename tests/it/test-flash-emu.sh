#!/usr/bin/env bash
# The CUDA fused-attention kernels (issue 19) run without a GPU: build/tests/flash_emu is
# kernels/cuda/attn_fused.cu compiled for the host, its kernels executed one CPU thread per
# CUDA thread with the tensor-core MMA, shuffles and barriers emulated (tests/emu/cuda_emu.h),
# on 6 shapes (GQA, MQA, T = 1, T not a multiple of the tiles, hd 16-128): within 2e-3 of
# the CPU model of the algorithm (kernels/cpu/flash.c) and 1.5e-2 of the double reference,
# both backwards the same bits. It cannot stand in for the hardware (docs/gpu.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
E=$PWD/$B/tests/flash_emu
[ -x "$E" ] || fail "$E not built (make all)"
"$E" >"$T/out" 2>&1 || { cat "$T/out"; fail "flash_emu"; }
[ "$(grep -c ': ok$' "$T/out")" -eq 6 ] || { cat "$T/out"; fail "not 6 shapes ok"; }
tail -1 "$T/out" | grep -q '^flash_emu: all within limits$' || fail "$(tail -1 "$T/out")"
echo ok
