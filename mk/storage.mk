# storage: the store against a local s3rver and under injected faults (the fault driver, test-s3, test-faults).
#   make test-s3       s3rver on loopback: the store suite on s3, CLI, s3cmd interop, error paths
#   make test-faults   server down, kill/restart mid-transfer, fault-injecting proxy, altered
#                      object, wrong secret, missing bucket (a few minutes)
STORE_TORTURE := $(BUILD)/faults/store_torture
all: $(STORE_TORTURE)
$(STORE_TORTURE): tests/faults/store_torture.c $(BUILD)/libxffl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libxffl.a $(LDLIBS) $(CUDA_LIBS)

.PHONY: test-s3 test-faults
test-s3: all
	@XFFL_BUILD=$(BUILD) bash tests/it/test-s3.sh
test-faults: all
	@XFFL_BUILD=$(BUILD) bash tests/faults/run.sh
