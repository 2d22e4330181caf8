# assistants-compat: every command a developer or CI needs. Python comes from .venv, made on
# first use from pyproject.toml; Buf runs through npx, pinned.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := npx --yes @bufbuild/buf@1.75.0
PROTO_FILES := $(wildcard proto/compat_core/v1/*.proto)
PYTEST_ARGS ?=
# The PostgreSQL pass of `make test`: an admin connection (it creates and drops a database per
# test server) and whether a missing server fails the target (CI) or skips the pass.
COMPAT_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
REQUIRE_POSTGRES ?=

.PHONY: run core edge migrate test bench lint proto check-proto venv clean

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

## test: the whole suite on SQLite, then again on PostgreSQL if a server answers at
## COMPAT_TEST_POSTGRES_URL (REQUIRE_POSTGRES=1: fail instead of skipping when none does)
test: venv
	COMPAT_TEST_POSTGRES_URL= $(BIN)/pytest $(PYTEST_ARGS)
	@if shown=$$($(BIN)/python -c "$$POSTGRES_PROBE" "$$COMPAT_TEST_POSTGRES_URL"); then \
		echo "PostgreSQL pass: $$shown"; \
		$(BIN)/pytest $(PYTEST_ARGS); \
	elif [ -n "$(REQUIRE_POSTGRES)" ]; then \
		echo "PostgreSQL pass FAILED: no server at $$shown (REQUIRE_POSTGRES is set)"; \
		exit 1; \
	else \
		echo "PostgreSQL pass SKIPPED: no server at $$shown"; \
	fi

# Whether a PostgreSQL server answers at argv[1] within 2 s (exit status 0). Prints the URL
# with any password masked, for the messages above; the reason it failed goes to stderr.
define POSTGRES_PROBE
import asyncio, sys
import asyncpg
from sqlalchemy.engine import make_url

try:
    url = make_url(sys.argv[1])
except Exception:
    print("(none: COMPAT_TEST_POSTGRES_URL is empty)" if not sys.argv[1] else "(unparsable URL)")
    sys.exit(1)
print(url.render_as_string(hide_password=True))

async def probe():
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=2)
    await conn.close()

try:
    asyncio.run(probe())
except Exception as exc:
    print(f"PostgreSQL probe: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
endef
export POSTGRES_PROBE
export COMPAT_TEST_POSTGRES_URL

## bench: figures beside same-run baselines (bench/README.md); BENCH_ARGS=--quick for a smoke run
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

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
