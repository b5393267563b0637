# comm: the transports' test programs (tests/mpi/<name>.c -> build/mpi/<name>), run under
# mpirun by tests/it/test-comm-mpi.sh. Built only where Open MPI is (MPI_ON, Makefile).
MPI_TEST_SRCS := $(sort $(wildcard tests/mpi/*.c))
MPI_TEST_BINS := $(MPI_TEST_SRCS:tests/mpi/%.c=$(BUILD)/mpi/%)
ifeq ($(MPI_ON),1)
all: $(MPI_TEST_BINS)
endif
$(BUILD)/mpi/%: tests/mpi/%.c $(BUILD)/libxffl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libxffl.a $(LDLIBS) $(CUDA_LIBS)
