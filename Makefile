# cleave — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin
DATA    ?= data
PKGS    := ./...
# Stamped into `cleave version`; without them the binary reads its build info.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(DATE)

.PHONY: all build run test test-k8s test-long bench bench-quick bench-idle bench-scale bench-micro lint fuzz clean codegen verify-codegen

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/cleave ./cmd/cleave
	$(GO) build -ldflags "-X github.com/cleavefs/cleave/loadgen.version=$(VERSION) -X github.com/cleavefs/cleave/loadgen.commit=$(COMMIT)" -o $(BIN)/cleave-loadgen ./cmd/cleave-loadgen

# run starts a whole local deployment (a router and 2 clusters of 3 nodes,
# each its own process) with data under ./data; Ctrl-C stops it.
run: build
	./$(BIN)/cleave up --data $(DATA)

# test builds everything, checks that go.mod and go.sum are tidy, vets it
# and runs every test with the race detector, including the multi-process
# tests under tests/, and then the Kubernetes end-to-end test (test-k8s).
test: build
	$(GO) mod tidy -diff
	$(GO) vet $(PKGS)
	$(GO) test -race -shuffle=on -timeout 15m $(PKGS)
	@$(MAKE) --no-print-directory test-k8s

# test-k8s runs the tests under tests/k8s on a real Kubernetes control
# plane (kube-apiserver, controller manager, scheduler, etcd) with a fake
# kubelet that runs pods as local processes: the operator installed with
# `kubectl apply -k manifests/default`, a CleaveStore made Ready, scaled by
# splitting while its operator restarts, and a node pod deleted. It
# needs root (a network namespace per pod) and skips, saying why, where it
# cannot have one; it installs iproute2 if missing and builds the
# Kubernetes binaries from Go modules once (scripts/build-kube.sh, cached
# in .cache/kube: see README for how long).
test-k8s:
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "test-k8s: SKIPPED: needs root for network namespaces and a bridge (run make test-k8s as root)"; exit 0; \
	fi; \
	sh scripts/apt-install.sh test-k8s iproute2 ip || exit 1; \
	probe=kubeenv-probe-$$$$; \
	if ! ip netns add $$probe 2>/dev/null; then \
		echo "test-k8s: SKIPPED: cannot create a network namespace here (ip netns add failed)"; exit 0; \
	fi; \
	ip netns del $$probe; \
	bin=$$(./scripts/build-kube.sh) || exit 1; \
	KUBEENV_BIN=$$bin $(GO) test -race -count=1 -timeout 25m -v ./tests/k8s/...

# test-long adds the longer fault schedules and soaks (build tag "long").
test-long: build
	$(GO) test -race -shuffle=on -tags long -timeout 60m $(PKGS)

# bench runs the standard load suite (docs/benchmarks.md): it starts
# `cleave up` in a temporary directory and drives it with cleave-loadgen,
# then runs the key-value workloads against a 3-member etcd cluster
# (installed by scripts/install-etcd.sh if missing; BENCH_ETCD=0 skips it)
# and, with BENCH_BASELINE=<git rev>, the headline runs against that
# revision's cleave; it prints cleave beside etcd and the baseline with
# ratios and server CPU per operation, and writes JSON and HTML results
# under bench/results/ (BENCH_DURATION per run, default 10s; about 4
# minutes in all, 5 with a baseline; BENCH_ROUNDS repeats it all).
bench: build
	CLEAVE_PREBUILT=1 ./bench/run.sh

# bench-quick runs only the headline runs (put 1 KiB at 64 clients and at 1,
# linearizable get at 64; cleave's client direct to the clusters, and its
# put and get at 64 through a router too) against cleave, etcd and any
# BENCH_BASELINE, in 3 rounds (BENCH_ROUNDS) whose medians it compares;
# about 8 minutes.
bench-quick: build
	CLEAVE_PREBUILT=1 BENCH_RUNS=headline BENCH_ROUNDS=$${BENCH_ROUNDS:-3} ./bench/run.sh

# bench-idle prints the CPU each process of an idle `cleave up` spends
# per second (IDLE_BASELINE=<git rev> measures that revision beside it).
bench-idle: build
	./bench/idle.sh

# bench-scale measures scale-out (needs root for the cgroups): node
# processes capped at 0.05 core each (a 1 ms quota every 20 ms), 1 KiB
# puts at 64 clients per cluster and at 64 in all, grown from 1 cluster
# to 2, 4 and 8 by splitting;
# each step settles (splits cleaned, nodes idle) and warms up, then runs 3
# rounds of each kind, median reported with the spread and where the CPU
# went (machine, nodes, routers, loadgen, cgroup throttling, and a capped
# probe's CPU per operation: how crowded the machine was); SCALE_FLAGS
# passes more (e.g. -ballast: probes in place of the nodes a step lacks, so
# every step crowds the machine alike; -fresh, -steps 1,2,4, -duration 20s,
# -cfs-period 100ms). About 15 minutes; results under
# bench/results/scale-<time>/.
bench-scale: build
	$(GO) run ./bench/scale $(SCALE_FLAGS)

# bench-micro runs the micro-benchmarks of the codec, the state machine,
# the replication write path and the connection round trip.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./wire ./fsm ./replica ./internal/rpc

lint:
	$(GO) mod tidy -diff
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# fuzz runs every fuzz target for FUZZTIME each (default 30s; about 4
# minutes in all). Their seed corpora (testdata/fuzz/) also run in `make
# test`. A failing input is written under the package's testdata/fuzz/:
# commit it with the fix, as a regression seed.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./wire:FuzzDecodeRequest \
	./wire:FuzzFrameStream \
	./internal/fspath:FuzzValidate \
	./fsm:FuzzDecodeCommand \
	./fsm:FuzzApply \
	./fsm:FuzzApplySequence \
	./replica:FuzzValidateMessage \
	./internal/bytesize:FuzzParse
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# codegen regenerates, from the CleaveStore types in operator/apis, their
# deepcopy functions, the typed clientset, listers and informers under
# operator/generated and the CRD under manifests/crd (hack/update-codegen.sh).
codegen:
	./hack/update-codegen.sh

# verify-codegen regenerates into a temporary copy and fails, showing the
# difference, if anything committed is stale.
verify-codegen:
	./hack/verify-codegen.sh

clean:
	rm -rf $(BIN)
