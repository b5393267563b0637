# The CUDA attention kernels (kernels/cuda/attn_fused.cu) compiled for the host and run on the
# CPU under tests/emu/cuda_emu.h's emulation of the CUDA features they use: g++ and libc,
# no CUDA. tests/it/test-flash-emu.sh runs it against the CPU model and the double reference.
FLASH_EMU := $(BUILD)/tests/flash_emu
$(FLASH_EMU): tests/emu/flash_emu.cc tests/emu/cuda_emu.h kernels/cuda/attn_fused.cu kernels/cuda/attn_fused.h \
              kernels/cpu/flash.h kernels/cpu/ref.h $(BUILD)/obj/kernels/cpu/flash.o $(BUILD)/obj/kernels/cpu/ref.o
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(OPT) -g -Wall -Wextra -Werror -Wno-unknown-pragmas -fno-strict-aliasing -I. -pthread \
	  -x c++ $< -x none $(BUILD)/obj/kernels/cpu/flash.o \
	  $(BUILD)/obj/kernels/cpu/ref.o -lm -o $@
all: $(FLASH_EMU)
