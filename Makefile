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
# pgvector, for file_search's dense search: built from the vendored source into the PostgreSQL
# pass's server when that server is on this machine and lacks it (needs root). The tests that
# need it skip without it, unless REQUIRE_POSTGRES is set (CI), where they fail.
PGVECTOR_INSTALL ?= ../shared/tools/install-pgvector

# code_interpreter's sandbox: whether a machine that cannot run it fails `make test` (CI)
# rather than skipping the tests that need it.
REQUIRE_SANDBOX ?=

.PHONY: run core edge migrate test bench lint proto check-proto venv venv-check sandbox-env clean

venv: $(BIN)/.installed sandbox-env

$(BIN)/.installed: pyproject.toml | venv-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## sandbox-env: bubblewrap (Debian's package, installed when missing and we are root with
## apt-get; otherwise one line says so and code_interpreter runs fail until it is there) and
## the sandbox's Python environment in .sandbox, where the server looks for it (pinned in
## sandbox/requirements.txt; rebuilt when they or the Python change, otherwise a no-op)
sandbox-env: $(BIN)/.installed
	@if ! command -v bwrap >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "sandbox: installing Debian's bubblewrap"; \
			{ apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
				{ apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }; } || \
				echo "sandbox: bubblewrap could not be installed; code_interpreter runs fail until it is"; \
		else \
			echo "sandbox: bwrap not found: install bubblewrap (Debian: apt-get install bubblewrap); code_interpreter runs fail until then"; \
		fi; \
	fi
	@$(BIN)/python -m compat_core.sandbox.environment .sandbox

## venv-check: one line and a stop when $(PYTHON) is older than 3.11; a .venv made by another
## Python (or whose Python no longer runs: its interpreter was removed) goes, to be rebuilt
venv-check:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
		echo "make: $(PYTHON) not found; assistants-compat needs Python 3.11 or newer (make PYTHON=/path/to/python3.11)" >&2; \
		exit 1; }
	@wanted=$$($(PYTHON) -c "$$PYTHON_IDENTITY" $(PYTHON)) || exit 1; \
	made=$$($(BIN)/python -c "$$PYTHON_IDENTITY" $(BIN)/python 2>/dev/null); \
	if [ -e $(VENV) ] && [ "$$made" != "$$wanted" ]; then \
		echo "make: $(VENV) was made by $${made:-a Python that no longer runs}, not by $(PYTHON) ($$wanted): rebuilding it"; \
		rm -rf $(VENV); \
	fi

# argv[1]'s interpreter as "real-path version", what tells one Python from another; exits 1
# with one line on stderr when it is older than 3.11. Python 2 must be able to say so too.
define PYTHON_IDENTITY
import os, sys
print("%s %d.%d.%d" % ((os.path.realpath(sys.executable),) + tuple(sys.version_info[:3])))
if sys.version_info < (3, 11):
    sys.stderr.write("make: %s is Python %d.%d.%d; assistants-compat needs 3.11 or newer: install it, then run make PYTHON=python3.11 (or newer)\n" % ((sys.argv[1],) + tuple(sys.version_info[:3])))
    sys.exit(1)
endef
export PYTHON_IDENTITY

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
	COMPAT_TEST_POSTGRES_URL= COMPAT_TEST_REQUIRE_SANDBOX=$(REQUIRE_SANDBOX) $(BIN)/pytest $(PYTEST_ARGS)
	@if shown=$$($(BIN)/python -c "$$POSTGRES_PROBE" "$$COMPAT_TEST_POSTGRES_URL"); then \
		echo "PostgreSQL pass: $$shown"; \
		case "$$COMPAT_TEST_POSTGRES_URL" in \
			*@127.0.0.1[:/]*|*@localhost[:/]*|*@127.0.0.1|*@localhost) \
				if [ -f "$(PGVECTOR_INSTALL)" ]; then \
					bash "$(PGVECTOR_INSTALL)" "$$COMPAT_TEST_POSTGRES_URL" || \
						echo "pgvector: not installed; the tests that need it skip (fail with REQUIRE_POSTGRES)"; \
				fi;; \
		esac; \
		COMPAT_TEST_REQUIRE_PGVECTOR=$(REQUIRE_POSTGRES) COMPAT_TEST_REQUIRE_SANDBOX=$(REQUIRE_SANDBOX) \
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
	rm -rf $(VENV) .sandbox .pytest_cache .mypy_cache .ruff_cache
