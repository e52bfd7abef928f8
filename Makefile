# Floodgate — build, test and drill. Every tool version is pinned here.

CONTROLLER_TOOLS_VERSION ?= v0.23.0
ENVTEST_K8S_VERSION      ?= 1.37.2
ENVTEST_ETCD_VERSION     ?= v3.6.6
KUSTOMIZE_VERSION        ?= v5.8.1
HELM_VERSION             ?= v3.22.0
KREW_VERSION             ?= v0.4.3
IMG                      ?= ghcr.io/floodgate-dev/floodgate:dev

LOCALBIN       := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE      := $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM           := $(LOCALBIN)/helm-$(HELM_VERSION)
KREW           := $(LOCALBIN)/krew-$(KREW_VERSION)
GO             ?= go
export ENVTEST_K8S_VERSION ENVTEST_ETCD_VERSION

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests (and their copies in the Helm chart, with the dashboard).
	$(CONTROLLER_GEN) rbac:roleName=floodgate-manager crd paths="./..." output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/traffic.floodgate.dev_trafficpolicies.yaml charts/floodgate/files/
	cp config/rbac/role.yaml charts/floodgate/files/role.yaml
	cp config/grafana/floodgate.json charts/floodgate/files/floodgate.json

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt
	$(GO) fmt ./...

.PHONY: vet
vet: ## go vet
	$(GO) vet ./...

.PHONY: envtest-assets
envtest-assets: ## Get kube-apiserver, etcd and kubectl for envtest (cached per user, built once if needed).
	@bash hack/envtest-assets.sh >/dev/null

.PHONY: gateway-api-crds
gateway-api-crds: ## Refresh test/crds/gateway-api{,-routes} from the Gateway API module go.mod names (standard channel).
	@dir=$$($(GO) list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api) && for f in gatewayclasses gateways httproutes referencegrants; do \
	  install -m 644 $$dir/config/crd/standard/gateway.networking.k8s.io_$$f.yaml test/crds/gateway-api/; done && \
	  for f in grpcroutes tlsroutes backendtlspolicies; do \
	  install -m 644 $$dir/config/crd/standard/gateway.networking.k8s.io_$$f.yaml test/crds/gateway-api-routes/; done

.PHONY: egctl
egctl: ## Get egctl (Envoy Gateway's CLI, whose translator the HTTPRoute tests route through; cached per user, built once).
	@bash hack/egctl.sh >/dev/null

.PHONY: traefik
traefik: ## Get Traefik (the real proxy test/traffic sends requests through; built once from its Go module, cached per user).
	@bash hack/traefik.sh >/dev/null

.PHONY: traefik-crds
traefik-crds: ## Refresh test/crds/traefik from the Traefik module hack/traefik.sh builds.
	@v=$$(sed -n 's/^version=\$${TRAEFIK_VERSION:-\(.*\)}$$/\1/p' hack/traefik.sh) && \
	  dir=$$(GOFLAGS=-mod=mod $(GO) mod download -json github.com/traefik/traefik/v3@$$v | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  install -m 644 $$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml test/crds/traefik/

.PHONY: envoy-gateway-crds
envoy-gateway-crds: ## Refresh test/crds/envoy-gateway from the Envoy Gateway module hack/egctl.sh builds (the kinds Floodgate writes on its routes).
	@v=$$(sed -n 's/.*EGCTL_VERSION:-\(v[0-9.]*\)}.*/\1/p' hack/egctl.sh) && \
	  dir=$$(GOFLAGS=-mod=mod $(GO) mod download -json github.com/envoyproxy/gateway@$$v | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  for f in httproutefilters backendtrafficpolicies; do \
	  install -m 644 $$dir/charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_$$f.yaml test/crds/envoy-gateway/; done

.PHONY: test-deps
test-deps: ## Install the Debian packages the tests use, when missing.
	@bash hack/ensure-debs.sh pcre2grep=pcre2-utils prometheus=prometheus envsubst=gettext-base chromium=chromium tmux=tmux ip=iproute2

.PHONY: test
test: manifests generate vet envtest-assets egctl traefik $(HELM) $(KREW) test-deps ## Run every test (unit, envtest, drills, chart, dashboard, krew, real traffic through Traefik).
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" EGCTL="$$(bash hack/egctl.sh)" TRAEFIK="$$(bash hack/traefik.sh)" HELM="$(HELM)" KREW="$(KREW)" \
	  $(GO) test ./... -count=1 -timeout 20m

.PHONY: drill
drill: envtest-assets ## Rehearse the Canva 2024 runbook on an embedded control plane and print its timeline.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" $(GO) run ./cmd/floodgate drill $(or $(DRILL),test/drills/canva-2024.yaml)

.PHONY: docs-report
docs-report: envtest-assets test-deps ## Render the Canva drill's HTML report in Chromium into docs/drill-report.png (the picture in the README).
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" REPORT_PNG=$(CURDIR)/docs/drill-report.png $(GO) test ./test/report -count=1

.PHONY: bench
bench: envtest-assets traefik ## Benchmarks (speed goals live here, never in timed unit tests): the controller at fleet scale against kubectl, and the lever's latency to clients through Traefik, appended to BENCHMARKS.md.
	@bash hack/ensure-debs.sh hey=hey taskset=util-linux ip=iproute2
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" $(GO) run ./test/bench -out BENCHMARKS.md $(BENCH_FLAGS)
	$(GO) test ./internal/shed -run '^$$' -bench . -benchmem -count 5

FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s; seeds also run in make test).
	$(GO) test ./internal/restore -run '^$$' -fuzz '^FuzzDecodeEncode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/provider/ingressnginx -run '^$$' -fuzz '^FuzzComplementPattern$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/provider/ingressnginx -run '^TestTheFuzzCorpusAgreesWithPCRE$$' -count=1
	$(GO) test ./internal/shed -run '^$$' -fuzz '^FuzzShedAnswer$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/core -run '^$$' -fuzz '^FuzzRequestAnnotation$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/crdcheck -run '^$$' -fuzz '^FuzzWhatTheCRDAcceptsTheControllerCanUse$$' -fuzztime $(FUZZTIME)

##@ Build

.PHONY: build
build: manifests generate ## Build the manager, the shed server, the plugin and the floodgate (drill) command.
	$(GO) build -o $(LOCALBIN)/manager ./cmd/manager
	$(GO) build -o $(LOCALBIN)/floodgate ./cmd/floodgate
	$(GO) build -o $(LOCALBIN)/shed-server ./cmd/shed-server
	$(GO) build -o $(LOCALBIN)/kubectl-floodgate ./cmd/kubectl-floodgate

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)

.PHONY: release
release: ## Build the plugin and floodgate for linux/darwin x amd64/arm64 into dist/ (tar.gz, sha256sums.txt) and the krew manifest dist/floodgate.yaml.
	@bash hack/ensure-debs.sh envsubst=gettext-base
	VERSION=$(VERSION) DIST=dist bash hack/release.sh

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	$(GO) run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	docker push $(IMG)

##@ Deployment

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRDs into the current cluster.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Remove the CRDs from the current cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the manager and the shed backend into the current cluster.
	cd config/default && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove Floodgate from the current cluster.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

$(KUSTOMIZE):
	GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $(KUSTOMIZE)

.PHONY: helm
helm: $(HELM) ## Get helm (built once from its Go module, pinned, cached per user).

$(HELM):
	mkdir -p $(LOCALBIN)
	cp "$$(bash hack/go-tool.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION))" $(HELM)

$(KREW):
	mkdir -p $(LOCALBIN)
	cp "$$(bash hack/go-tool.sh krew sigs.k8s.io/krew/cmd/krew $(KREW_VERSION))" $(KREW)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
