# Hugging Face interop: tests/it/test-hf.sh reads xffl's logits through this helper.
$(BUILD)/tests/hf_logits: tests/interop/hf_logits.c $(BUILD)/libxffl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libxffl.a $(LDLIBS) $(CUDA_LIBS)
all: $(BUILD)/tests/hf_logits
