# Tessera developer commands. `make test` is the whole suite, exactly what CI runs.
#   make dev                  everything on embedded PostgreSQL/Redis (unless DATABASE_URL/REDIS_URL)
#   make test ARGS='-k auth'  ARGS go to pytest (`make dev ARGS=...` to `tessera dev`)
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export BUF_CACHE_DIR := $(CURDIR)/build/buf-cache
VENV := .venv/bin
BUF := $(VENV)/buf
# mypy fails on a directory without Python files, so only the packages that exist.
MYPY_TARGETS := $(foreach d,server workers tessera_client,$(if $(wildcard $(d)/*.py),$(d)))
GEN_DIGEST := find gen -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum

.PHONY: help bootstrap dev test gen proto-deps lint check-gen bench clean gallery

help:
	@echo "make dev | test | gen | lint | check-gen | bench | gallery | clean   (ARGS='...' for dev/test/bench/gallery)"

bootstrap:
	@bash scripts/bootstrap.sh

dev: bootstrap
	$(VENV)/tessera dev $(ARGS)

test: bootstrap
	@bash scripts/test.sh $(ARGS)

gen:
	@bash scripts/gen.sh

# buf's workspace includes build/proto-deps (git-ignored); lay it out first.
proto-deps:
	@$(VENV)/python scripts/fetch_proto_deps.py >/dev/null

lint: proto-deps
	$(VENV)/ruff check --output-format=concise .
	$(VENV)/ruff format --check .
	$(VENV)/mypy $(MYPY_TARGETS)
	$(VENV)/lint-imports --no-cache
	$(BUF) lint
	$(BUF) format -d --exit-code proto

# Regenerates gen/ in place. Fails when that changed anything (gen/ was stale relative to proto/),
# and on CI (CI=true, a clean checkout) also when gen/ differs from the commit at all.
check-gen:
	@before=$$($(GEN_DIGEST)); \
	bash scripts/gen.sh >/dev/null; \
	if [[ $$before != $$($(GEN_DIGEST)) ]]; then \
	  echo "check-gen: gen/ was stale; it is regenerated now, commit it:" >&2; \
	  git status --porcelain -- gen/ >&2; exit 1; \
	fi; \
	if [[ $${CI:-} == true && -n $$(git status --porcelain -- gen/) ]]; then \
	  echo "check-gen: gen/ differs from the commit:" >&2; \
	  git status --porcelain -- gen/ >&2; exit 1; \
	fi; \
	echo "check-gen: gen/ matches proto/"

# The export gallery for a person to look at (build/gallery/gallery.pdf), with the visual checks.
# ARGS='--full' for every paper size, orientation and PNG scale; '--update-references' to accept a new look.
gallery:
	$(VENV)/python -m tests.visual $(ARGS)

bench:
	@if [[ ! -d bench ]]; then echo "make bench: there is no bench/ directory yet" >&2; exit 1; fi
	$(VENV)/python -m bench $(ARGS)

# Build outputs and tool caches; keeps downloads (build/cache), .venv, node_modules and var/.
clean:
	@if [[ -d build ]]; then find build -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +; fi
	rm -rf .mypy_cache .ruff_cache .pytest_cache .grimp_cache .import_linter_cache
	find . \( -path ./.venv -o -path ./node_modules -o -path ./.git \) -prune -o \
	  -type d -name __pycache__ -exec rm -rf {} +
