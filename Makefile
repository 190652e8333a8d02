# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Users get the ranges in pyproject.toml; here torch/torchvision are pinned to the builds on disk.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.edgekd-installed
TEACHER := examples/digits/teacher.pt

.PHONY: install demo test lint clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check edgekd tests examples benchmarks

clean:
	rm -rf runs $(TEACHER) $(TEACHER:.pt=.json)
