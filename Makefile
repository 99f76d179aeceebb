# braid — build, test and demo. `make demo` and `make test` do all the set-up on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := demo

DENO_VERSION := 2.9.6
TOOLS := .tools
# Deno from PATH, else a local copy installed from npm into $(TOOLS).
DENO := $(or $(shell command -v deno 2>/dev/null),$(TOOLS)/bin/deno)
DENO_FLAGS := --allow-ffi --allow-read --allow-write --allow-env

CC ?= cc
CFLAGS_CPU := -std=c11 -O3 -march=native -fPIC -fopenmp -Wall -Wextra -Wno-unused-parameter \
              -Icsrc/include
CPU_SOURCES := $(wildcard csrc/cpu/*.c)
CPU_HEADERS := csrc/include/braid.h $(wildcard csrc/cpu/*.h)

# CUDA backend: Hopper machine code plus PTX for other GPUs; cuDNN and cuBLAS found by the
# normal linker path, with an rpath to the CUDA toolkit's libraries.
NVCC ?= nvcc
CUDA_HOME ?= /usr/local/cuda
NVCCFLAGS := -O3 -std=c++17 -Xcompiler -fPIC,-Wall -Icsrc/include \
             -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90
CUDA_SOURCES := $(wildcard csrc/cuda/*.cu)
CUDA_OBJECTS := $(patsubst csrc/cuda/%.cu,build/cuda/%.o,$(CUDA_SOURCES))
CUDA_HEADERS := csrc/include/braid.h $(wildcard csrc/cuda/*.h) $(wildcard csrc/cuda/*.cuh)
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublasLt -lcublas
# cuDNN (and cuBLAS) outside the toolkit, e.g. unpacked from NVIDIA's nvidia-cudnn-cu13 and
# nvidia-cublas wheels: CUDNN_HOME=<dir with include/ and lib/>, CUBLAS_HOME likewise.
ifdef CUDNN_HOME
NVCCFLAGS += -I$(CUDNN_HOME)/include
CUDA_LIBS += -L$(CUDNN_HOME)/lib -Xlinker -rpath,$(CUDNN_HOME)/lib
endif
ifdef CUBLAS_HOME
NVCCFLAGS += -I$(CUBLAS_HOME)/include
CUDA_LIBS += -L$(CUBLAS_HOME)/lib -Xlinker -rpath,$(CUBLAS_HOME)/lib
endif

.PHONY: deno deps cpu cuda engine-probe contention-probe demo test test-node test-gpu check fmt schema onnx-schema clean

$(TOOLS)/bin/deno:
	@echo "installing deno $(DENO_VERSION) from npm into $(TOOLS)/"
	@mkdir -p $(TOOLS)/bin
	@npm install --silent --prefix $(TOOLS) --no-save --no-package-lock --no-audit --no-fund \
		deno@$(DENO_VERSION) >/dev/null
	@ln -sf "$$(find $$PWD/$(TOOLS)/node_modules/@deno -type f -name deno | head -n 1)" $@
	@$@ --version | head -n 1

deno: $(DENO)

# npm packages named in deno.json, into node_modules/ (nodeModulesDir: auto).
node_modules/.deno: deno.json $(DENO)
	@$(DENO) install --quiet
	@touch $@
deps: node_modules/.deno

build/libbraid_cpu.so: $(CPU_SOURCES) $(CPU_HEADERS)
	@mkdir -p build
	$(CC) $(CFLAGS_CPU) -shared -o $@ $(CPU_SOURCES) -lm
cpu: build/libbraid_cpu.so

# One object a source file, so `make -j` compiles them side by side.
build/cuda/%.o: csrc/cuda/%.cu $(CUDA_HEADERS)
	@mkdir -p build/cuda
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<
build/libbraid_cuda.so: $(CUDA_OBJECTS) csrc/cuda/exports.map
	$(NVCC) $(NVCCFLAGS) -shared -Xlinker --version-script=csrc/cuda/exports.map -o $@ \
		$(CUDA_OBJECTS) $(CUDA_LIBS)
cuda: build/libbraid_cuda.so

# cuDNN's engine plans for braid's convolutions without a GPU (cuDNN 9.8+;
# csrc/tools/engine_probe.cu, bench/engine_probe.ts, tests/engine_probe_test.ts).
build/tools/engine_probe.o: csrc/tools/engine_probe.cu $(CUDA_HEADERS)
	@mkdir -p build/tools
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<
build/engine_probe: build/tools/engine_probe.o $(CUDA_OBJECTS)
	$(NVCC) $(NVCCFLAGS) -o $@ $^ $(CUDA_LIBS)
engine-probe: build/engine_probe

# The host cost of a stage timer's driver calls at 1 and 4 threads, each thread on its own green
# context, with the primary context or the thread's green context current
# (csrc/tools/contention_probe.cu).
build/contention_probe: csrc/tools/contention_probe.cu
	@mkdir -p build
	$(NVCC) $(NVCCFLAGS) -o $@ $<
contention-probe: build/contention_probe

demo: cpu deps
	@$(DENO) run $(DENO_FLAGS) lib/cli/main.ts demo

# Tests also compile a C probe (params_test) and run the CLI in subprocesses.
test: cpu deps
	@$(DENO) test $(DENO_FLAGS) --allow-run tests/

# The npm package (npm/, git-ignored; `deno task build:npm`, which also installs its dependencies
# with npm) under Node 20+: tests/node/expected.ts runs googlenet in Deno and writes what Node must
# reproduce bit for bit into build/node-test/, then `node --test` runs tests/node/*.node.mjs.
test-node: cpu deps
	@$(DENO) task build:npm
	@$(DENO) run $(DENO_FLAGS) --allow-run tests/node/expected.ts build/node-test
	@node --test tests/node/*.node.mjs

# On the GPU machine (no network): deno and node_modules travel with the tree, so this target
# does not run `deno install`. Runs every test, the GPU ones included (BRAID_GPU_TESTS=1 makes
# a missing GPU an error instead of a skip), then a multi-stream run under compute-sanitizer
# (racecheck and memcheck).
test-gpu: cpu cuda engine-probe
	@BRAID_GPU_TESTS=1 $(DENO) test --cached-only $(DENO_FLAGS) --allow-run tests/
	@DENO=$(DENO) bash tests/gpu/sanitize.sh

check: deps
	@$(DENO) fmt --check
	@$(DENO) lint
	@$(DENO) check mod.ts lib/cli/main.ts tests/ bench/

fmt: deps
	@$(DENO) fmt

# Regenerates lib/format/generated/ from the schema (needs flatc: Debian's flatbuffers-compiler).
schema:
	@command -v flatc >/dev/null || { echo "flatc missing: apt-get install flatbuffers-compiler"; exit 1; }
	rm -rf lib/format/generated
	flatc --ts -o lib/format/generated lib/format/model.fbs
	@# flatc 2.0.8 has no --ts-no-import-ext and writes extensionless relative imports
	@# ('../../braid/fb/node'); Deno resolves only full paths, so add ".ts".
	find lib/format/generated -name '*.ts' -exec \
		sed -i -E "s#^((import|export) .* from '\.\.?/[^']*)';\$$#\1.ts';#" {} +

# Regenerates lib/onnx/generated/ (protobufjs's descriptor) from lib/onnx/onnx.proto.
onnx-schema: deps
	@$(DENO) run --allow-read --allow-write --allow-run scripts/onnx_descriptor.ts

clean:
	rm -rf build
