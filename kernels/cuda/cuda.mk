# CUDA backend build rules (owned by the GPU backend; see docs/gpu.md).
#
# XFFL_CUDA=auto (default): build the CUDA backend into $(BUILD) when nvcc is found AND an
#   NVIDIA driver is present (/dev/nvidiactl). A toolkit without a GPU (CI, the shared dev
#   machine) keeps the fast CPU-only default: linking cuBLAS/NCCL (~800 MB of .so) into every
#   test process and into `make asan` buys nothing where no device can run it.
# XFFL_CUDA=1 forces it (`make cuda` is `make XFFL_CUDA=1 all`), XFFL_CUDA=0 disables it.
# CUDA_OBJS / CUDA_LIBS are what the Makefile links; the rendezvous and UNSUPPORTED stubs of
# kernels/cuda/dist.h are in every build.
#
#   make cuda        libxffl + xffl with the cuda backend, in $(BUILD)
#   make cuda-check  CI: nvcc for sm_80 + sm_90 + PTX, link xffl and the GPU tests, no GPU needed
#   make test-gpu    build and run tests/gpu (needs only the CUDA toolkit with cuBLAS and NCCL)
#   make bench-gpu   train_gpu tokens/s and MFU for base and 1b next to PyTorch (tests/torch_ref.py)

# Rules here come before the Makefile's `all`: keep `all` the default goal.
_cuda_prev_goal := $(.DEFAULT_GOAL)
_comma := ,

CUDA_HOME ?= $(firstword $(patsubst %/bin/nvcc,%,$(shell command -v nvcc 2>/dev/null)) \
                         $(patsubst %/bin/nvcc,%,$(wildcard /usr/local/cuda/bin/nvcc)))
NVCC      := $(if $(CUDA_HOME),$(CUDA_HOME)/bin/nvcc,)
CUDA_LIBDIR := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib $(CUDA_HOME)/targets/x86_64-linux/lib))
# NCCL: next to the toolkit, in the system, or in PyTorch's nvidia-nccl wheel (GPU machines).
NCCL_HOME ?= $(or $(firstword $(patsubst %/include/nccl.h,%,$(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))),\
               $(shell python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null))
NCCL_LIBDIR := $(firstword $(wildcard $(NCCL_HOME)/lib64/libnccl.so.2 $(NCCL_HOME)/lib/libnccl.so.2 \
                 /usr/lib/x86_64-linux-gnu/libnccl.so.2))
NCCL_LIBDIR := $(patsubst %/,%,$(dir $(NCCL_LIBDIR)))

XFFL_CUDA ?= auto
ifeq ($(XFFL_CUDA),auto)
XFFL_CUDA_ON := $(if $(and $(NVCC),$(wildcard /dev/nvidiactl)),1,0)
else
XFFL_CUDA_ON := $(XFFL_CUDA)
endif

CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
# Warnings are errors here and in CI; the GPU machines' toolkits and compilers may be other
# versions with new warnings, so test-gpu/bench-gpu builds there only warn unless XFFL_WERROR=1.
XFFL_WERROR ?= 1
NVCC_WERROR := $(if $(filter 1,$(XFFL_WERROR)),-Werror all-warnings -Xcompiler -Werror,)
NVCCFLAGS := -std=c++17 -O3 -I. $(CUDA_GENCODE) $(NVCC_WERROR) \
             -Xcompiler -Wall,-Wextra,-fPIC,-ffp-contract=off $(EXTRA_NVCCFLAGS)
CUDA_INC  := -I$(CUDA_HOME)/include $(if $(NCCL_HOME),-I$(NCCL_HOME)/include,)
CUDA_LINK := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) \
             $(if $(NCCL_LIBDIR),-L$(NCCL_LIBDIR) -Wl$(_comma)-rpath$(_comma)$(NCCL_LIBDIR),) \
             -lcublas -lcudart -l:libnccl.so.2 -lstdc++ -lm -lpthread

CUDA_ALWAYS_SRCS := kernels/cuda/dist.c kernels/cuda/dist_id.c kernels/cuda/dist_spawn.c
CUDA_C_SRCS      := kernels/cuda/model.c kernels/cuda/gemm.c kernels/cuda/backend.c kernels/cuda/dist_grads.c
CUDA_CU_SRCS     := $(sort $(wildcard kernels/cuda/*.cu))

ifeq ($(XFFL_CUDA_ON),1)
ifeq ($(NVCC),)
$(error XFFL_CUDA=1 but no nvcc found (set CUDA_HOME or put nvcc on PATH))
endif
CFLAGS    += -DXFFL_WITH_CUDA $(CUDA_INC)
CUDA_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CUDA_ALWAYS_SRCS) $(CUDA_C_SRCS)) \
             $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_CU_SRCS))
CUDA_LIBS := $(CUDA_LINK)
else
CUDA_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CUDA_ALWAYS_SRCS))
CUDA_LIBS :=
endif

# Objects compiled with and without -DXFFL_WITH_CUDA differ (kern.c's dispatch), so a mode
# switch in one build dir recompiles them: the stamp changes only when the mode does (a fresh
# stamp in CPU mode is dated 1970 so existing CPU-only trees are not rebuilt for nothing).
CUDA_STAMP := $(BUILD)/.cuda-mode
_cuda_stamp := $(shell mkdir -p $(BUILD) && s=$(CUDA_STAMP); \
  if [ ! -f $$s ]; then echo $(XFFL_CUDA_ON) > $$s; [ $(XFFL_CUDA_ON) = 0 ] && touch -d @0 $$s; \
  elif [ "$$(cat $$s)" != "$(XFFL_CUDA_ON)" ]; then echo $(XFFL_CUDA_ON) > $$s; fi)
$(LIB_OBJS) $(CMD_OBJS) $(TEST_OBJS) $(CUDA_OBJS): $(CUDA_STAMP)

$(BUILD)/obj/kernels/cuda/%.o: kernels/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MF $(@:.o=.d) -c $< -o $@

# ---- GPU tests and bench: need only the CUDA toolkit (cuBLAS, NCCL) and libc ------------
# The GPU machines have no HDF5/zstd/OpenBLAS/CUnit/libs3, so these binaries are built from
# the few sources that need none of them: the CUDA engine, the naive CPU reference ops
# (kernels/cpu/ref.c), the parameter table and status/util.
GPU_DIR      := $(BUILD)/gpu
GPU_CFLAGS   := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra $(if $(filter 1,$(XFFL_WERROR)),-Werror,) -ffp-contract=off -fno-fast-math -fopenmp \
                -I. -DXFFL_WITH_CUDA $(CUDA_INC) -MMD -MP
GPU_LIB_SRCS := common/status.c common/util.c common/digest.c common/log.c libckpt/model.c $(wildcard kernels/cpu/ref.c kernels/cpu/flash.c) \
                $(CUDA_ALWAYS_SRCS) kernels/cuda/model.c kernels/cuda/gemm.c comm/comm.c comm/comm_mpi.c comm/comm_nccl.c pipelines/memplan.c
GPU_LIB_OBJS := $(patsubst %.c,$(GPU_DIR)/obj/%.o,$(GPU_LIB_SRCS)) $(patsubst %.cu,$(GPU_DIR)/obj/%.o,$(CUDA_CU_SRCS))
GPU_TEST_SRCS := $(filter-out tests/gpu/bench_gpu.c,$(sort $(wildcard tests/gpu/*.c)))
GPU_TEST_OBJS := $(patsubst %.c,$(GPU_DIR)/obj/%.o,$(GPU_TEST_SRCS))

$(GPU_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(GPU_CFLAGS) -c $< -o $@
$(GPU_DIR)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MF $(@:.o=.d) -c $< -o $@

# -lcrypto: common/digest.c (OpenSSL's SHA-256), which common/util.c's file reads use
$(GPU_DIR)/xffl_gpu_tests: $(GPU_TEST_OBJS) $(GPU_LIB_OBJS)
	$(CC) -fopenmp -o $@ $^ $(CUDA_LINK) -lcrypto
$(GPU_DIR)/xffl_gpu_bench: $(GPU_DIR)/obj/tests/gpu/bench_gpu.o $(GPU_DIR)/obj/tests/gpu/gpu_util.o $(GPU_LIB_OBJS)
	$(CC) -fopenmp -o $@ $^ $(CUDA_LINK) -lcrypto

.PHONY: cuda cuda-check test-gpu bench-gpu gpu-bins
cuda:
	@$(MAKE) --no-print-directory XFFL_CUDA=1 all

gpu-bins: $(GPU_DIR)/xffl_gpu_tests $(GPU_DIR)/xffl_gpu_bench

# CI: everything CUDA compiles and links, in its own tree so $(BUILD) keeps its mode.
cuda-check:
	@test -n "$(NVCC)" || { echo "cuda-check: no nvcc (set CUDA_HOME)" >&2; exit 1; }
	@$(MAKE) --no-print-directory BUILD=$(BUILD)-cuda XFFL_CUDA=1 all gpu-bins
	@# The toolkit here may lack cuobjdump: keep nvcc's per-target outputs and check them.
	@rm -rf $(BUILD)-cuda/keep && mkdir -p $(BUILD)-cuda/keep
	@for f in $(CUDA_CU_SRCS); do $(NVCC) $(NVCCFLAGS) --keep --keep-dir $(BUILD)-cuda/keep -c $$f \
	  -o $(BUILD)-cuda/keep/$$(basename $$f .cu).o || exit 1; \
	  b=$(BUILD)-cuda/keep/$$(basename $$f .cu); \
	  for want in $$b.compute_80.cubin $$b.compute_90.sm_90.cubin $$b.compute_90.ptx; do \
	    test -s $$want || { echo "cuda-check: nvcc made no $$want" >&2; exit 1; }; done; \
	  grep -q '^.target sm_90' $$b.compute_90.ptx || { echo "cuda-check: $$b.compute_90.ptx is not sm_90 PTX" >&2; exit 1; }; \
	done
	@# libnccl is only NEEDED by binaries that call kern_dist_* (not yet xffl itself)
	@for bin in $(BUILD)-cuda/xffl $(BUILD)-cuda/xffl_tests $(BUILD)-cuda/gpu/xffl_gpu_tests $(BUILD)-cuda/gpu/xffl_gpu_bench; do \
	  readelf -S $$bin | grep -q nv_fatbin || { echo "cuda-check: $$bin holds no device code" >&2; exit 1; }; \
	  libs="libcublas libcudart"; case $$bin in *xffl) ;; *) libs="$$libs libnccl";; esac; \
	  for l in $$libs; do ldd $$bin | grep -q "$$l.*=> /" || \
	    { echo "cuda-check: $$bin: $$l not linked or not found" >&2; exit 1; }; done; done
	@if [ -x $(CUDA_HOME)/bin/cuobjdump ]; then for a in sm_80 sm_90; do \
	  $(CUDA_HOME)/bin/cuobjdump --list-elf $(BUILD)-cuda/xffl_tests | grep -q "$$a" || \
	    { echo "cuda-check: no $$a code in $(BUILD)-cuda/xffl_tests" >&2; exit 1; }; done; fi
	@$(BUILD)-cuda/xffl --help >/dev/null
	@$(BUILD)-cuda/gpu/xffl_gpu_tests | tail -2
	@echo "cuda-check: OK (sm_80 + sm_90 cubins and compute_90 PTX; xffl, xffl_tests, xffl_gpu_tests, xffl_gpu_bench linked with cuBLAS, NCCL)"

test-gpu:
	@$(MAKE) --no-print-directory XFFL_WERROR=$(or $(XFFL_WERROR_GPU),0) $(GPU_DIR)/xffl_gpu_tests
	@$(GPU_DIR)/xffl_gpu_tests $(GPU_TEST)

bench-gpu:
	@$(MAKE) --no-print-directory XFFL_WERROR=$(or $(XFFL_WERROR_GPU),0) $(GPU_DIR)/xffl_gpu_bench
	@XFFL_GPU_BENCH=$(GPU_DIR)/xffl_gpu_bench bash tests/gpu/bench-gpu.sh

.DEFAULT_GOAL := $(_cuda_prev_goal)
