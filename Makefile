# The billing transaction processor. Needs only Go (see go.mod for the version).
GO       ?= go
BIN      ?= bin
PKGS     ?= ./...
# A count, not a duration: with a duration, go1.26's fuzzing coordinator can report the
# end of its own time as "context deadline exceeded" and fail the target with no failing
# input (golang/go#75804, fixed in go1.27); a count has no deadline to race. About 5-10 s
# per target on two cores.
FUZZTIME ?= 100000x

# APT_INSTALL installs the Debian package named after it, as root or with passwordless
# sudo, waiting for another apt's lock; when the package lists are stale it updates them
# and tries again; it fails saying why.
APT_INSTALL = sh -c 'SUDO=; if [ "$$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then SUDO=sudo; fi; \
	apt="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300"; \
	$$apt install -y --no-install-recommends "$$1" >/dev/null || \
	  { $$apt update >/dev/null && $$apt install -y --no-install-recommends "$$1" >/dev/null; } || \
	  { echo "apt-get could not install Debian package $$1 (it needs root or passwordless sudo)"; exit 1; }' apt-install

.PHONY: run cluster test chaos build vet fmt fuzz bench bench-smoke promtool chromium screenshots clean

## run: the whole system on the embedded default (devstack up)
run: build
	$(BIN)/devstack up

## cluster: the store and three clustered NATS servers (sync_interval: always), each a
## process of its own, for services started separately (README, "The production shape")
cluster: build
	$(BIN)/devstack cluster

## build: the three binaries into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: formatting, vet, every test with the race detector (integration and end-to-end
## included, against embedded NATS and FerretDB; the dashboard's in headless Chromium, which
## `make chromium` installs first), then a short run of each fuzz target.
## The end-to-end test runs after the others, alone: it runs several processes of its own.
## So does the webhook fairness test, which compares delivery delays measured one after the
## other: under the other packages' load, that comparison measures the load instead.
ALONE := TestSlowEndpointDoesNotHoldOthersBack
test: vet
	$(MAKE) chromium
	@unformatted=$$(gofmt -l cmd internal e2e bench webhooksig client api deploy 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) test -race -count=1 -timeout 12m -skip '^$(ALONE)$$' $$($(GO) list $(PKGS) | grep -v /e2e$$)
	$(GO) test -race -count=1 -timeout 5m -run '^$(ALONE)$$' ./internal/service
	$(GO) test -race -count=1 -timeout 10m ./e2e
	$(MAKE) bench-smoke
	$(MAKE) promtool
	$(MAKE) fuzz

## chaos: the fault suite (e2e/cluster_test.go) ten times longer, 20,000 charges a scenario
## (CHAOS_SCALE); its table (scenario, charges, ok, lost, duplicated, unexpected, time to
## settle, p99 of the accepted requests) goes to e2e/results/chaos-<UTC time>.md
CHAOS_SCALE ?= 10
chaos:
	@mkdir -p e2e/results; f=$$(pwd)/e2e/results/chaos-$$(date -u +%Y%m%dT%H%M%SZ).md; \
	printf '| scenario | charges | ok | lost | duplicated | unexpected | time to settle | p99 accepted |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n' > $$f; \
	E2E_SCALE=$(CHAOS_SCALE) E2E_CHAOS_RESULTS=$$f $(GO) test -count=1 -timeout 90m -run '^TestCluster' -v ./e2e; rc=$$?; \
	cat $$f; echo "chaos: results in $$f"; exit $$rc

vet:
	$(GO) vet $(PKGS)

## fuzz: each fuzz target for FUZZTIME executions
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCharge$$' -fuzztime $(FUZZTIME) ./internal/api
	$(GO) test -run '^$$' -fuzz '^FuzzContainsCardNumber$$' -fuzztime $(FUZZTIME) ./internal/charge
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/auth

## bench: the system as separate processes under load, against this machine's ceilings
## measured in the same run; prints the figures and writes them to bench/results/
## (BENCHFLAGS, e.g. "-duration 20s -concurrency 128 -n 50000 -cpuprofile")
bench:
	$(GO) run ./bench -go $(GO) $(BENCHFLAGS)

## bench-smoke: the whole benchmark, short, on each NATS durability setup, so that it
## cannot rot: every phase runs and must settle what it submitted; the reports go to a
## temporary directory, not bench/results
bench-smoke:
	@out=$$(mktemp -d); \
	$(GO) run ./bench -go $(GO) -smoke -nats all -duration 1s -warmup 500ms -n 1000 -budget 60s -reads 20 -grow 0 -keys 20000 -out $$out >/dev/null; rc=$$?; \
	grep -h -E "^billing bench|accepted/s|settled/s" $$out/latest.txt; rm -rf $$out; exit $$rc

## promtool: the Prometheus alerting rules checked and their unit tests run
## (deploy/prometheus). Without promtool on the PATH, it installs Debian's prometheus
## package for it (as root, or with passwordless sudo), then keeps the server it brings
## from running: it would take port 9090, the ingest's admin port.
promtool:
	@command -v promtool >/dev/null || { $(APT_INSTALL) prometheus && \
	  { [ "$$(id -u)" = 0 ] && systemctl disable --now prometheus.service || sudo -n systemctl disable --now prometheus.service; } >/dev/null 2>&1 || true; }
	cd deploy/prometheus && promtool check rules billing-alerts.yaml && promtool test rules billing-alerts_test.yaml

## chromium: Debian's chromium, which the dashboard's browser tests (e2e/browser) drive;
## installed with apt-get when missing (as root, or with passwordless sudo)
chromium:
	@command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || $(APT_INSTALL) chromium

## screenshots: PNGs of each dashboard page, on a little seeded data, into docs/screenshots
## (1280 px wide, and the charge page 390 px wide as on a phone)
screenshots: chromium
	$(GO) test -count=1 -timeout 5m -run '^TestScreenshots$$' ./e2e/browser -args -screenshots=$(CURDIR)/docs/screenshots

fmt:
	gofmt -w cmd internal e2e bench webhooksig client api deploy

clean:
	rm -rf $(BIN) data
