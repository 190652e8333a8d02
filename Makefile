# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Users get the ranges in pyproject.toml; here torch/torchvision are pinned to the builds on disk.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.edgekd-installed
TEACHER := examples/digits/teacher.pt

.PHONY: install demo test lint clean system-deps

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

# Debian packages some tests use: chromium renders report.html; openssh-server gives the SSH
# tests a loopback sshd. Without them (no root, no apt) those tests skip and say why.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1; } || echo "chromium could not be installed: the report render test will skip"
	@test -x /usr/sbin/sshd || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  openssh-server openssh-client) >/dev/null 2>&1; } || \
	  echo "openssh-server could not be installed: the SSH tests will skip"

# Two pytest workers with one torch thread each on CI's 2 cores; a file's tests stay on one
# worker (loadscope), so its module fixtures (the end-to-end runs) run once.
test: $(STAMP) system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadscope

lint: $(STAMP)
	$(BIN)/ruff check edgekd tests examples benchmarks

clean:
	rm -rf runs $(TEACHER) $(TEACHER:.pt=.json)
