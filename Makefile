# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Users get the ranges in pyproject.toml; here torch/torchvision are pinned to the builds on disk.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.edgekd-installed
TEACHER := examples/digits/teacher.pt
FASHION_TEACHER := examples/fashion/teacher.pt
# make demo-fashion FASHION_ARGS="--max-train 10000 --epochs 5" for a quicker look on a CPU
FASHION_ARGS ?=

.PHONY: install demo demo-fashion test lint clean system-deps

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(TEACHER): $(STAMP) examples/digits/train_teacher.py
	$(BIN)/python examples/digits/train_teacher.py --out $(TEACHER)

demo: $(TEACHER)
	$(BIN)/edgekd compress $(TEACHER) --data digits --target host --out runs/demo --force
	@echo "report: runs/demo/report.json and runs/demo/report.md; artifact: runs/demo/build/model.ort.onnx"

$(FASHION_TEACHER): $(STAMP) examples/fashion/train_teacher.py
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  { echo "Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (or make system-deps)"; exit 1; }
	$(BIN)/python examples/fashion/train_teacher.py --out $(FASHION_TEACHER)

# The recipe teacher (resnet18, 40 epochs on the 55k training images) compressed on Fashion-MNIST;
# accuracies are on the official 10k test set. A GPU makes it minutes; see the README for CPU.
demo-fashion: $(FASHION_TEACHER)
	$(BIN)/edgekd compress $(FASHION_TEACHER) --data fashion-mnist --target host \
	  --out runs/demo-fashion --force $(FASHION_ARGS)
	@echo "report: runs/demo-fashion/report.json and report.md; artifact: runs/demo-fashion/build/model.ort.onnx"

# Debian packages some tests use: chromium renders report.html; openssh-server gives the SSH
# tests a loopback sshd; dataset-fashion-mnist is the Fashion-MNIST data source. Without them
# (no root, no apt) those tests skip and say why.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1; } || echo "chromium could not be installed: the report render test will skip"
	@test -x /usr/sbin/sshd || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  openssh-server openssh-client) >/dev/null 2>&1; } || \
	  echo "openssh-server could not be installed: the SSH tests will skip"
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { \
	  command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	  >/dev/null 2>&1; } || \
	  echo "dataset-fashion-mnist could not be installed: the Fashion-MNIST tests will skip"

# Two pytest workers with one torch thread each on CI's 2 cores; a file's tests stay on one
# worker (loadscope), so its module fixtures (the end-to-end runs) run once.
test: $(STAMP) system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadscope --durations=25

lint: $(STAMP)
	$(BIN)/ruff check edgekd tests examples benchmarks

clean:
	rm -rf runs $(TEACHER) $(TEACHER:.pt=.json) $(FASHION_TEACHER) $(FASHION_TEACHER:.pt=.json)
