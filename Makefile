# xffl — one place for flags. `make` builds build/xffl, build/libxffl.a and the
# HDF5 zstd plugin; `make test` installs missing Debian packages, then runs every test.
# Sources are picked up by directory: a new .c file in a module folder is built and
# linked without touching this file; a new tests/unit/test_<name>.c is a new suite.

CC      ?= cc
BUILD   := build
PREFIX  ?= /usr/local
OPENBLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
HDF5_CFLAGS  := $(shell pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS    := $(shell pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
# Open MPI (comm/comm_mpi.c, the CPU ranks' transport): built in when pkg-config finds it
# (scripts/install-deps installs it); without it the mpi transport reports UNSUPPORTED.
MPI_CFLAGS   := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS     := $(shell pkg-config --libs ompi-c 2>/dev/null)
MPI_ON       := $(if $(MPI_LIBS),1,0)

# -ffp-contract=off: aggregation must be bit-identical across CPUs (docs/design.md "Determinism"); no -march=native.
OPT      ?= -O2
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -ffp-contract=off -fno-fast-math \
            -fopenmp -fPIC -I. -I$(OPENBLAS_INC) $(HDF5_CFLAGS) -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS  += -fopenmp $(EXTRA_LDFLAGS)
# The plugin is loaded by h5dump and h5py, which carry no sanitizer runtime: never instrument it.
PLUGIN_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -fPIC -I. $(HDF5_CFLAGS)
LDLIBS   := $(HDF5_LIBS) $(MPI_LIBS) -ls3 -lcurl -lzstd -lcrypto -lopenblas -ldnnl -lm -lpthread

LIB_SRCS    := $(sort $(wildcard common/*.c libckpt/*.c storage/*.c kernels/*.c kernels/cpu/*.c formats/*.c text/*.c comm/*.c pipelines/*.c))
CMD_SRCS    := $(sort $(wildcard cmd/*.c))
TEST_SRCS   := $(sort $(wildcard tests/unit/*.c))
PLUGIN_SRCS := $(sort $(wildcard libckpt/plugin/*.c))
LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CMD_OBJS    := $(CMD_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_OBJS   := $(TEST_SRCS:%.c=$(BUILD)/obj/%.o)
SUITES      := $(patsubst tests/unit/test_%.c,%,$(filter tests/unit/test_%.c,$(TEST_SRCS)))

# CUDA backend: built when nvcc is found (or forced with `make cuda`).
include kernels/cuda/cuda.mk

.PHONY: all test demo bench cuda asan clean install deps unit
all: $(BUILD)/xffl $(BUILD)/libxffl.a $(BUILD)/plugins/libh5zstd.so $(BUILD)/xffl_tests

deps:
	@scripts/install-deps

# A machine without the build packages stops here, saying what to run, instead of at a
# compiler error deep in the build. Checked once per build tree (the stamp).
DEP_HEADERS := cblas.h hdf5.h libs3.h curl/curl.h zstd.h CUnit/Basic.h openssl/sha.h dnnl.h
$(BUILD)/.deps-ok:
	@test -f $(OPENBLAS_INC)/cblas.h && printf '#include <%s>\n' $(DEP_HEADERS) | \
	    $(CC) -std=c11 -I$(OPENBLAS_INC) $(HDF5_CFLAGS) -E -x c - -o /dev/null 2>/dev/null || { \
	    echo "make: the headers of OpenBLAS (OpenMP build), HDF5, libs3, libcurl, zstd, CUnit, OpenSSL or oneDNN are missing." >&2; \
	    echo "make: run 'make test' or 'make demo' (they install the Debian packages first), or scripts/install-deps (root or sudo)." >&2; \
	    exit 1; }
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/obj/%.o: %.c | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/comm/comm_mpi.o: CFLAGS += $(if $(filter 1,$(MPI_ON)),-DXFFL_WITH_MPI $(MPI_CFLAGS),)

$(BUILD)/libxffl.a: $(LIB_OBJS) $(CUDA_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/xffl: $(CMD_OBJS) $(BUILD)/libxffl.a
	$(CC) $(LDFLAGS) -o $@ $(CMD_OBJS) $(BUILD)/libxffl.a $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/plugins/libh5zstd.so: $(PLUGIN_SRCS) libckpt/zstd_filter.c libckpt/zstd_filter.h | $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@ $(PLUGIN_SRCS) libckpt/zstd_filter.c $(HDF5_LIBS) -lzstd

$(BUILD)/gen/suites.h: Makefile $(TEST_SRCS)
	@mkdir -p $(dir $@)
	@printf '%s\n' $(foreach s,$(SUITES),"XFFL_SUITE($(s))") > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/tests/unit/runner.o: $(BUILD)/gen/suites.h
$(BUILD)/obj/tests/unit/runner.o: CFLAGS += -I$(BUILD)/gen

$(BUILD)/xffl_tests: $(TEST_OBJS) $(BUILD)/libxffl.a
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) $(BUILD)/libxffl.a $(LDLIBS) $(CUDA_LIBS) -lcunit

# Every test: the CUnit suites, then the integration scripts; one closing tally.
test: deps
	@$(MAKE) --no-print-directory all
	@tests/run

unit: all
	@$(BUILD)/xffl_tests $(SUITE)

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run $(BENCH)

# Same tests under AddressSanitizer + UndefinedBehaviorSanitizer, in their own tree.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	@XFFL_BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/xffl/plugins
	install -m 755 $(BUILD)/xffl $(DESTDIR)$(PREFIX)/bin/xffl
	install -m 644 $(BUILD)/plugins/libh5zstd.so $(DESTDIR)$(PREFIX)/lib/xffl/plugins/

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmarks: bench/<name>.c becomes build/bench/<name>; bench/run runs bench/*.sh.
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
all: $(BENCH_BINS)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libxffl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libxffl.a $(LDLIBS) $(CUDA_LIBS)

# Extra targets owned by one module each (test-slurm, test-faults, test-s3, ...).
-include $(sort $(wildcard mk/*.mk))
