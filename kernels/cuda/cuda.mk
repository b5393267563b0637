# CUDA backend build rules (owned by the GPU backend). Empty until kernels/cuda/ has sources.
CUDA_OBJS :=
CUDA_LIBS :=
