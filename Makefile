# minformer: `make` builds the library and CLI into build/; `make test` runs the suite.
# MPI=1: data-parallel training across MPI ranks (src/train/dist.c), built
# with mpicc into build/mpi unless BUILD is given; `make MPI=1 test-mpi` runs
# its tests. The default build needs no MPI.
ifeq ($(MPI),1)
ifneq ($(origin CC),command line)
CC      := mpicc
endif
BUILD   ?= build/mpi
MPI_CFLAGS := -DMF_MPI
endif
CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
OPT     ?= -O3

# -march=native and -fopenmp only where the compiler takes them; NO_OMP=1 turns OpenMP off.
try-flag = $(shell echo 'int main(void){return 0;}' | $(CC) $(1) -x c - -o /dev/null 2>/dev/null && echo $(1))
MARCH   := $(call try-flag,-march=native)
# GCC vectorizes for 256-bit registers on AVX-512 CPUs unless told otherwise. The
# elementwise and row ops (src/kernels/ops.c: GELU, LayerNorm, softmax) ran faster
# on 512-bit ones (GELU's forward pass 1.3x, docs/PERFORMANCE.md), with the same
# bits: each lane does the same IEEE operations, and no reduction is reordered
# without -ffast-math. The fp32 GEMM ran up to 6% slower so, and keeps the default.
VEC512  := $(call try-flag,-mprefer-vector-width=512)
ifneq ($(NO_OMP),1)
OMPFLAG := $(call try-flag,-fopenmp)
endif

# Never -ffast-math: NaN checks, erf-based GELU and bitwise determinism rely on IEEE semantics.
CFLAGS  ?= $(OPT)
CFLAGS  += -std=c11 -Wall -Wextra -fPIC $(MARCH) $(OMPFLAG) $(MPI_CFLAGS) -Iinclude -Isrc -Iapp $(EXTRA_CFLAGS)
LDLIBS  := $(OMPFLAG) -lpng -ljpeg -lz -lm
ifeq ($(OMPFLAG),)
# A serial build ignores the OpenMP pragmas on purpose.
CFLAGS  += -Wno-unknown-pragmas
endif

# The library (src/, one folder per layer: base, kernels, model, data, train,
# io) and the application on top of it (app/: the experiment grids and the
# figures, in libminformer-app.a, and the command line).
LIB_SRC  := $(sort $(wildcard src/*/*.c))
# The bf16 matrix multiply (src/kernels/gemm_bf16.c) is compiled for AMX and
# AVX-512 whatever the build machine has; src/kernels/cpu.c decides at run
# time whether it may run. A compiler without those flags builds without it.
BF16_FLAGS := $(call try-flag,-mamx-tile -mamx-bf16 -mavx512f -mavx512bw -mavx512bf16)
ifeq ($(BF16_FLAGS),)
LIB_SRC  := $(filter-out src/kernels/gemm_bf16.c,$(LIB_SRC))
else
CFLAGS   += -DMF_BF16_KERNEL
endif
APP_SRC  := $(sort $(wildcard app/experiment/*.c app/figures/*.c))
CLI_SRC  := $(sort $(wildcard app/cli/*.c))
# tests/mpi runs only under `make MPI=1 test-mpi` (it needs mpirun).
TEST_SRC := $(filter-out tests/mpi/%,$(sort $(wildcard tests/*/test_*.c)))
MPI_TEST_SRC := $(sort $(wildcard tests/mpi/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(addprefix $(BUILD)/tests/,$(notdir $(TEST_SRC:.c=)))
HEADERS  := $(wildcard include/*.h include/minformer/*.h src/*/*.h app/*/*.h tests/support/*.h)
APP_LIB  := $(BUILD)/libminformer-app.a
# Cairo (and fontconfig, its fonts) draws the figures: the application's
# objects and what links them, never the library.
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo fontconfig)
CAIRO_LIBS   := $(shell pkg-config --libs cairo fontconfig)
$(APP_OBJ) $(CLI_OBJ): CFLAGS += $(CAIRO_CFLAGS)
# Sources some tests include directly (the fuzz targets' bodies, replayed by a test).
TEST_DEPS := $(wildcard fuzz/*.c fuzz/*.h)

.PHONY: all test test-mpi asan data run install clean bench fuzz
all: $(BUILD)/libminformer.a $(BUILD)/libminformer.so $(BUILD)/minformer

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libminformer.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Only what the public headers declare between MF_BEGIN_API and MF_END_API
# (mf_ functions) leaves the shared library; the kernels and internal helpers
# stay hidden (tests/unit/test_abi.c checks). The static archive is unchanged:
# hidden symbols still link within one program.
$(LIB_OBJ): CFLAGS += -fvisibility=hidden
# The ops' loops choose between values computed on both paths (GELU's two
# tails, exp's clamps). Under the default -ftrapping-math GCC may not compute
# a floating-point value on a path that does not use it, so without AVX-512's
# masked operations those loops stay scalar. -fno-trapping-math lets them
# become vector blends: the values and their bits are the same (IEEE
# arithmetic is unchanged; only the floating-point exception flags may
# differ, and nothing reads them).
$(BUILD)/obj/src/kernels/ops.o: CFLAGS += -fno-trapping-math
$(BUILD)/obj/src/kernels/gemm_bf16.o: CFLAGS += $(BF16_FLAGS)
$(BUILD)/obj/src/kernels/ops.o: CFLAGS += $(VEC512)
# The SONAME carries the ABI's major version: programs record libminformer.so.0
# and keep working with any library of that version.
SONAME := libminformer.so.0
$(BUILD)/$(SONAME): $(LIB_OBJ)
	$(CC) -shared $(CFLAGS) -Wl,-soname,$(SONAME) $^ -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/libminformer.so: $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(APP_LIB): $(APP_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The built-in grids, grids/*.json, embedded in the application's library.
GRID_FILES := $(sort $(wildcard grids/*.json))
$(BUILD)/gen/grids.c: $(GRID_FILES) scripts/embed_grids.sh
	@mkdir -p $(dir $@)
	sh scripts/embed_grids.sh $(GRID_FILES) > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gen/grids.o: $(BUILD)/gen/grids.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(APP_LIB): $(BUILD)/obj/gen/grids.o

$(BUILD)/minformer: $(CLI_OBJ) $(APP_LIB) $(BUILD)/libminformer.a
	$(CC) $(CFLAGS) $(CLI_OBJ) $(APP_LIB) $(BUILD)/libminformer.a -o $@ $(LDFLAGS) $(LDLIBS) $(CAIRO_LIBS)

# Tests by kind: tests/unit (one library part each), tests/e2e (the binary as
# a child process), tests/fuzz (the fuzz corpora replayed).
define test_rule
$(BUILD)/tests/$(notdir $(1:.c=)): $(1) $(APP_LIB) $(BUILD)/libminformer.a $(HEADERS) $(TEST_DEPS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(CAIRO_CFLAGS) -Itests/support $$< $(APP_LIB) $(BUILD)/libminformer.a -o $$@ $$(LDFLAGS) $$(LDLIBS) $$(CAIRO_LIBS)
endef
$(foreach t,$(TEST_SRC) $(MPI_TEST_SRC),$(eval $(call test_rule,$(t))))

# Helper programs (benchmarks, converters): tools/NAME.c -> build/tools/NAME.
$(BUILD)/tools/%: tools/%.c $(APP_LIB) $(BUILD)/libminformer.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(APP_LIB) $(BUILD)/libminformer.a -o $@ $(LDFLAGS) $(LDLIBS)

# Runs every test program; scripts/run_tests.sh sums their counts into one
# closing line "N passed, M failed" and fails if any test failed.
test: all $(TEST_BIN)
	@BUILD=$(BUILD) sh scripts/run_tests.sh $(TEST_BIN)

# The MPI tests: training under mpirun at 1, 2 and 3 ranks against a build
# without MPI (SERIAL_BUILD, made here if missing), resuming across rank
# counts, a killed rank. Needs MPI=1 and Open MPI's mpirun.
SERIAL_BUILD ?= build
MPI_TEST_BIN := $(addprefix $(BUILD)/tests/,$(notdir $(MPI_TEST_SRC:.c=)))
test-mpi: all $(MPI_TEST_BIN)
ifneq ($(MPI),1)
	@echo "test-mpi needs an MPI build: make MPI=1 test-mpi" >&2; exit 2
endif
	$(MAKE) MPI=0 BUILD=$(SERIAL_BUILD) $(SERIAL_BUILD)/minformer
	@MINFORMER_SERIAL=$(SERIAL_BUILD)/minformer BUILD=$(BUILD) sh scripts/run_tests.sh $(MPI_TEST_BIN)

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g" NO_OMP=$(NO_OMP) \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" test

data:
	sh scripts/get_data.sh $(DATA)

# The main job: fetch the data if missing, then the demo.
run: all
	sh scripts/run_demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/minformer \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/minformer $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/minformer.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/minformer/*.h $(DESTDIR)$(PREFIX)/include/minformer/
	install -m 644 $(BUILD)/libminformer.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/$(SONAME) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libminformer.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/.*MF_VERSION "\(.*\)"/\1/p' include/minformer/core.h)|' \
	  minformer.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/minformer.pc

clean:
	rm -rf build

# Builds the libFuzzer targets (clang) and runs each for FUZZ_SECONDS (default 60).
fuzz:
	sh scripts/fuzz.sh

# Throughput of the default workloads (and PyTorch's, where installed): not a test.
bench: all $(BUILD)/tools/bench
	BUILD=$(BUILD) sh scripts/bench.sh
