# Plain entry points; every target works on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DOCKER ?= /usr/bin/docker
IMAGE ?= mcp-orchestration:latest
ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
BUILDER_IMAGE ?= mcp-orchestration/debian:13-slim
RUNTIME_IMAGE ?= mcp-orchestration/distroless-python3-debian13:nonroot
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# Every file time in the image's own layers (reproducible builds): the commit's time.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: install lint test test-fast test-container demo demo-cli bench bench-server bench-trust bench-fleet bench-lock bench-http bench-container clean engine bases lock wheelhouse image image-dev repro-check verify-release backup restore audit sbom

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,audit]'
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks scripts build
	$(BIN)/ruff check src tests benchmarks scripts build
	$(BIN)/mypy
	$(BIN)/lint-imports

# Unit and integration tests (two workers, each test module on one), then the container tests against a freshly built image.
# Without a Docker engine the container tests skip, unless MCP_ORCHESTRATION_REQUIRE_DOCKER=1 (CI).
test: lint
	$(BIN)/pytest -n 2 --dist loadfile -m "not container"
	$(MAKE) test-container

test-container: $(STAMP)
	@if $(DOCKER) info >/dev/null 2>&1; then $(MAKE) image repro-check; fi
	$(BIN)/pytest -m container

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# The shipped image end to end: key secrets, init, an MCP session over stdio, rotation, verification.
demo: $(STAMP) image
	IMAGE=$(IMAGE) DOCKER=$(DOCKER) bash scripts/demo_container.sh

# The same trust core through the CLI on this machine, no container.
demo-cli: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/store_bench.py

bench-server: $(STAMP)
	$(BIN)/python benchmarks/server_bench.py

# BEFORE=/path/to/an/older/checkout/src also compares the cold start with that release.
bench-trust: $(STAMP)
	$(BIN)/python benchmarks/trust_bench.py $(if $(BEFORE),--before $(BEFORE))

# 1,000 keyless desktops (processes) syncing from nginx and from an OCI registry on loopback; about 10 minutes.
# DESKTOPS=100 for a quick run.
bench-fleet: $(STAMP)
	$(BIN)/python benchmarks/fleet_bench.py $(if $(DESKTOPS),--desktops $(DESKTOPS))

# lock and check of a profile of five local stdio servers, beside the SDK's own client listing them; no network.
bench-lock: $(STAMP)
	$(BIN)/python benchmarks/lock_bench.py

# tools/call over streamable HTTP on loopback (JWT auth, no auth, a bare SDK server), then a load of parallel
# sessions and stateless clients; a few minutes. ARGS=--quick for a smoke test.
bench-http: $(STAMP)
	$(BIN)/python benchmarks/http_bench.py $(ARGS)

bench-container: $(STAMP) image
	$(BIN)/python benchmarks/container_bench.py

# -- the image: engine, base images from Debian packages, wheelhouse, build ---------------------
engine:
	build/docker-engine.sh

bases: engine
	build/base-images.sh

lock:
	build/lock.sh

wheelhouse:
	build/wheelhouse.sh $(ARCH)

# The locally assembled bases, unless BUILDER_IMAGE/RUNTIME_IMAGE name others (e.g. the upstream
# debian:13-slim and gcr.io/distroless/python3-debian13:nonroot where a registry is reachable).
LOCAL_BASES := $(if $(filter mcp-orchestration/%,$(BUILDER_IMAGE) $(RUNTIME_IMAGE)),bases,engine)

# Recursive (=): the bases' chain ids and config digests are read when a recipe runs, after `bases` has built them.
chain_id = $(shell DOCKER=$(DOCKER) build/chain-id.sh '$(1)' 2>/dev/null)
config_digest = $(shell $(PYTHON) build/config_digest.py --docker $(DOCKER) '$(1)' 2>/dev/null)
BUILD_IMAGE = DOCKER_BUILDKIT=1 $(DOCKER) build --network=host -f Dockerfile.distroless \
	  --build-arg BUILDER_IMAGE=$(BUILDER_IMAGE) --build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE) \
	  --build-arg BUILDER_CHAINID=$(call chain_id,$(BUILDER_IMAGE)) --build-arg RUNTIME_CHAINID=$(call chain_id,$(RUNTIME_IMAGE)) \
	  --build-arg BUILDER_CONFIG=$(call config_digest,$(BUILDER_IMAGE)) --build-arg RUNTIME_CONFIG=$(call config_digest,$(RUNTIME_IMAGE)) \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)

# Then the config's times are set to SOURCE_DATE_EPOCH too (build/set_created.py): the image id is reproducible.
STAMP_CREATED = $(PYTHON) build/set_created.py --docker $(DOCKER)

# --no-cache: BuildKit keys a cached COPY by its source's contents, not their times, so a cached build of a
# new commit would reuse layers stamped with an older commit's time (tests/container/test_reproducible.py).
image: $(LOCAL_BASES) wheelhouse
	$(BUILD_IMAGE) --no-cache $(BUILD_FLAGS) -t $(IMAGE) .
	$(STAMP_CREATED) $(IMAGE) $(SOURCE_DATE_EPOCH)

# Reproducible: two builds of this commit with --no-cache, on the same bases and wheelhouse, must give the
# same layers and config (but for `created`); build/repro_check.py shows what differs, file by file.
# REFERENCE=IMAGE builds once and compares with that image instead (a release: build/rebuild-compare.sh, which
# make verify-release runs, first checks out and pulls the bases the release names).
REPRO_TAG := mcp-orchestration:repro
repro-check: export REFERENCE := $(REFERENCE)
repro-check: $(LOCAL_BASES) wheelhouse
ifdef REFERENCE
	$(DOCKER) image inspect "$$REFERENCE" >/dev/null 2>&1 || $(DOCKER) pull "$$REFERENCE"
	$(BUILD_IMAGE) --quiet --no-cache -t $(REPRO_TAG)-b . && $(STAMP_CREATED) $(REPRO_TAG)-b $(SOURCE_DATE_EPOCH)
	$(PYTHON) build/repro_check.py --docker $(DOCKER) "$$REFERENCE" $(REPRO_TAG)-b
else
	$(BUILD_IMAGE) --quiet --no-cache -t $(REPRO_TAG)-a . && $(STAMP_CREATED) $(REPRO_TAG)-a $(SOURCE_DATE_EPOCH)
	$(BUILD_IMAGE) --quiet --no-cache -t $(REPRO_TAG)-b . && $(STAMP_CREATED) $(REPRO_TAG)-b $(SOURCE_DATE_EPOCH)
	$(PYTHON) build/repro_check.py --docker $(DOCKER) $(REPRO_TAG)-a $(REPRO_TAG)-b
endif

image-dev: $(LOCAL_BASES) wheelhouse
	DOCKER_BUILDKIT=1 $(DOCKER) build --network=host -f Dockerfile.distroless --target dev \
	  --build-arg BUILDER_IMAGE=$(BUILDER_IMAGE) --build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE) -t mcp-orchestration:dev .

# Check a pulled release before running it: signature, SBOM and provenance (cosign, gh), then a rebuild of this
# checkout (clean, at the image's revision) compared layer by layer. REF=NAME@sha256:... TAG=vX.Y.Z; exit 0/1/2.
# REF and TAG reach the script through the environment, quoted: never as shell text.
verify-release: export REF := $(REF)
verify-release: export TAG := $(TAG)
verify-release:
	@test -n "$$REF" && test -n "$$TAG" || { echo "make verify-release: set REF=NAME@sha256:... TAG=vX.Y.Z" >&2; exit 2; }
	DOCKER=$(DOCKER) build/verify-release.sh "$$REF" "$$TAG"

# -- dependency audit: the whole-image SBOM, pip-audit on the lock and the image's venv, Debian's tracker, then the gate.
# Needs PyPI's JSON API, Debian's security tracker and a built image (`make image audit` to rebuild first); CI here does not run it.
# The gate runs on build/tools.lock's hash-pinned packages (build/tools.sh), not on the venv of `make install`.
# The exit status is the gate's verdict: 0 pass, 1 fail, 2 no verdict.
audit:
	DOCKER=$(DOCKER) IMAGE=$(IMAGE) build/audit.sh

# The whole-image SBOM alone (build/out/audit/image-full.cdx.json): the built image and its wheelhouse, on build/tools.lock.
sbom:
	DOCKER=$(DOCKER) IMAGE=$(IMAGE) build/sbom.sh

# -- the store volume: verified backup and restore through the image ------------------------------
VOLUME ?= mcp-orchestration-data
BACKUP ?= mcp-orchestration-backup.tar
STORE_RUN = $(DOCKER) run --rm -i --init --network none --read-only --cap-drop ALL \
	--security-opt no-new-privileges -v $(VOLUME):/var/lib/mcp-orchestration $(IMAGE)

# The container holds no host state: EXPECT_KEY=SHA256:... is the root the store must have.
backup:
	@test -n "$(EXPECT_KEY)" || { echo "make backup: set EXPECT_KEY=SHA256:... (your pinned root key)" >&2; exit 2; }
	@test ! -e $(BACKUP) || { echo "make backup: $(BACKUP) exists; name another with BACKUP=" >&2; exit 1; }
	rm -f $(BACKUP).partial
	umask 077 && $(STORE_RUN) backup --expect-key $(EXPECT_KEY) --out - >$(BACKUP).partial \
	  || { rm -f $(BACKUP).partial; exit 1; }
	mv $(BACKUP).partial $(BACKUP)

# Into an empty volume; stop the server first (FORCE=--force keeps an existing store aside).
# The archive's manifest is not signed: the pinned root decides whose store is accepted.
restore:
	@test -n "$(EXPECT_KEY)" || { echo "make restore: set EXPECT_KEY=SHA256:... (your pinned root key)" >&2; exit 2; }
	$(STORE_RUN) restore --expect-key $(EXPECT_KEY) --from - $(FORCE) <$(BACKUP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/out
