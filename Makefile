# assistants-compat: every command a developer or CI needs. Python comes from .venv, made on
# first use from pyproject.toml; Buf runs through npx, pinned.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := npx --yes @bufbuild/buf@1.75.0
PROTO_FILES := $(wildcard proto/compat_core/v1/*.proto)
PYTEST_ARGS ?=

.PHONY: run core edge migrate test lint proto check-proto venv clean

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## run: start core and edge in one process on the embedded default (SQLite, builtin model)
run: venv
	mkdir -p data
	$(BIN)/assistants-compat run

## core / edge: start one half alone (scale-out)
core: venv
	mkdir -p data
	$(BIN)/assistants-compat core

edge: venv
	$(BIN)/assistants-compat edge

migrate: venv
	$(BIN)/assistants-compat migrate

## test: the whole suite
test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: ruff, mypy and buf
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd proto && $(BUF) lint

## proto: regenerate compat_core/v1 from proto/
proto: venv
	rm -f compat_core/v1/*_pb2*.py compat_core/v1/*_pb2*.pyi
	PATH=$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTO_FILES)

## check-proto: fail when the committed generated code is stale
check-proto: proto
	@git status --porcelain -- compat_core/v1 | grep . && { echo "generated code is stale: run make proto and commit"; exit 1; } || echo "generated code is fresh"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
