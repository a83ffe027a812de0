# lambdarasp: `make demo` shows it work, `make test` proves it.
GO ?= go

.PHONY: demo events test build layer examples publish-layer bench fuzz fmt vet generate

# The release's version, stamped into the extension.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# The example function (examples/orders) and the extension under
# lambdarasp local, through a scripted scenario (examples/demo): steady
# traffic, outbound calls to a never-seen host and to the instance
# metadata, injections, a repeat attacker, a slow-down, an error burst, an
# attack wave and the quarantine. Exits 1 if an expected outcome is missing.
demo:
	@$(GO) build -o bin/lambdarasp ./cmd/lambdarasp
	@$(GO) build -o bin/extensions/lambdarasp ./cmd/lambdarasp-extension
	@$(GO) build -o bin/orders ./examples/orders
	@$(GO) run ./examples/demo

# Evaluate every sample event in examples/events and print a table of
# verdicts. lambdarasp check exits 1 when something is blocked: expected here.
events:
	@$(GO) build -o bin/lambdarasp ./cmd/lambdarasp && bin/lambdarasp check --format table examples/events; \
	status=$$?; if [ $$status -gt 1 ]; then exit $$status; fi

test: fmt vet
	$(GO) test -count=1 ./...
	@# The CRS regression pass rate, in the output (go test hides the logs of passing tests).
	@$(GO) test -count=1 -v -run '^(TestCRSRegression|TestFastPathMatchesReference)$$' ./protect | grep -a 'CRS regression\|fast path vs reference'
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60000x -fuzzminimizetime 10x ./internal/source
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 20000x -fuzzminimizetime 10x ./internal/report
	$(GO) test -run '^$$' -fuzz FuzzLiteral -fuzztime 20000x -fuzzminimizetime 10x ./internal/egress
	$(GO) test -run '^$$' -fuzz FuzzKind -fuzztime 20000x -fuzzminimizetime 10x ./internal/source
	$(GO) test -run '^$$' -fuzz FuzzRespond -fuzztime 5000x -fuzzminimizetime 10x ./protect
	$(GO) test -run '^$$' -fuzz FuzzParsePolicy -fuzztime 5000x -fuzzminimizetime 10x ./extension
	$(GO) test -run '^$$' -fuzz FuzzTelemetry -fuzztime 5000x -fuzzminimizetime 10x ./extension
	$(GO) test -run '^$$' -fuzz FuzzAudit -fuzztime 5000x -fuzzminimizetime 10x ./internal/audit

build:
	$(GO) build -trimpath -o bin/lambdarasp ./cmd/lambdarasp
	$(GO) build -trimpath -o bin/extensions/lambdarasp ./cmd/lambdarasp-extension

# The Lambda layer, dist/lambdarasp-layer-{x86_64,arm64}.zip (the extension
# at extensions/lambdarasp), with each zip's size and the extension's idle
# resident memory, measured under the local emulator.
layer:
	@$(GO) run ./internal/dist layer -out dist -version $(VERSION)

# The example functions (examples/*/) as provided.al2023 bootstraps,
# dist/<example>-{x86_64,arm64}.zip, which their templates deploy.
examples:
	@$(GO) run ./internal/dist examples -out dist

# Prints the aws lambda publish-layer-version commands for the layer zips;
# runs them only when AWS credentials are present, never when CI is set.
publish-layer: layer
	@$(GO) run ./internal/dist publish-layer -out dist -version $(VERSION)

# Inspection and cold start, lambdarasp side by side with raw Coraza + CRS
# and a bare handler, 5 runs each: the raw output goes to bin/bench.txt,
# the table of medians and ratios (as in bench/RESULTS.md) to the screen.
bench:
	@mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./bench/ | tee bin/bench.txt | $(GO) run ./bench/table

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/source
	$(GO) test -run '^$$' -fuzz FuzzDifferential -fuzztime 60s ./protect
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/report
	$(GO) test -run '^$$' -fuzz FuzzLiteral -fuzztime 60s ./internal/egress
	$(GO) test -run '^$$' -fuzz FuzzKind -fuzztime 60s ./internal/source
	$(GO) test -run '^$$' -fuzz FuzzRespond -fuzztime 60s ./protect
	$(GO) test -run '^$$' -fuzz FuzzParsePolicy -fuzztime 60s ./extension
	$(GO) test -run '^$$' -fuzz FuzzTelemetry -fuzztime 60s ./extension
	$(GO) test -run '^$$' -fuzz FuzzAudit -fuzztime 60s ./internal/audit

# Regenerate internal/waf/atoms.bin (the atom analysis of the embedded
# rules' patterns) after changing rules/ or the analysis; make test fails
# while it is stale.
generate:
	$(GO) test -count=1 -run '^TestAtomTable$$' ./internal/waf -update

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
