# make fuzz: libFuzzer targets for the parsers of untrusted files. Each tests/fuzz/fuzz_<name>.c
# (one LLVMFuzzerTestOneInput) is a target, linked against the parser modules
# (FUZZ_LIB_DIRS) built with clang and AddressSanitizer + UndefinedBehaviorSanitizer;
# `make fuzz` builds them all and runs each for FUZZ_SECONDS (default 30) from its seeds in
# tests/fuzz/corpus/<name>/ (new inputs it finds go to build-fuzz/corpus/<name>/, kept
# between runs; a crash leaves build-fuzz/crash-<name>-* and fails the target).
# `make fuzz FUZZ=name` runs one. A new parser's target is one file, plus its module's
# folder here if it is not yet listed.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 30
# the pipelines' parsers (manifests, federation settings, the part reader's checks, delta
# decoding, store URLs) pull in their modules; OpenMP pragmas are left out (one thread),
# libgomp only answers omp_get_max_threads()
FUZZ_LIB_DIRS := common text formats libckpt storage pipelines comm kernels kernels/cpu
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -I. -I$(OPENBLAS_INC) $(HDF5_CFLAGS)
FUZZ_LIB_SRCS := $(sort $(foreach d,$(FUZZ_LIB_DIRS),$(wildcard $(d)/*.c)) $(CUDA_ALWAYS_SRCS))
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SRCS    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRCS))
FUZZ_RUN     := $(if $(FUZZ),$(FUZZ),$(FUZZ_NAMES))

.PHONY: fuzz fuzz-build
fuzz:
	@scripts/install-deps --fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@set -e; for n in $(FUZZ_RUN); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	    echo "fuzz $$n: $(FUZZ_SECONDS) s from tests/fuzz/corpus/$$n"; \
	    $(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$n- \
	        $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n 2>$(FUZZ_BUILD)/fuzz_$$n.log \
	        || { tail -60 $(FUZZ_BUILD)/fuzz_$$n.log; echo "fuzz $$n: FAILED (input in $(FUZZ_BUILD)/crash-$$n-*)"; exit 1; }; \
	    grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' $(FUZZ_BUILD)/fuzz_$$n.log | tr '\n' ' '; echo; \
	    grep -E 'cov: [0-9]+' $(FUZZ_BUILD)/fuzz_$$n.log | tail -1; \
	done

fuzz-build: $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libparsers.a: $(FUZZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libparsers.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libparsers.a $(LDLIBS) -lgomp
