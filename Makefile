# kubehook Makefile. `make help` lists the targets.

# Image used by docker-build and deploy.
IMG ?= kubehook:latest

# Build tools live in bin/ and are built from pinned Go modules under hack/tools.
LOCALBIN ?= $(CURDIR)/bin
K8SBIN ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CRANE ?= $(LOCALBIN)/crane
KUBECTL ?= $(K8SBIN)/kubectl
HELM ?= $(LOCALBIN)/helm
KUSTOMIZE ?= $(KUBECTL) kustomize

FUZZTIME ?= 10s

# The version linked into the control-plane binaries, so clients see a real version.
K8S_VERSION ?= v1.37.2
K8S_LDFLAGS = -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean

# envtest finds kube-apiserver and etcd in bin/k8s, built by `make tools`,
# unless the user points KUBEBUILDER_ASSETS at binaries of their own.
ifeq ($(origin KUBEBUILDER_ASSETS),undefined)
KUBEBUILDER_ASSETS := $(K8SBIN)
ENVTEST_ASSETS := $(K8SBIN)/kube-apiserver $(K8SBIN)/etcd $(KUBECTL)
endif
export KUBEBUILDER_ASSETS

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS = -X github.com/kubehook/kubehook/internal/version.Version=$(VERSION)

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

# The chart installs these same files (charts/kubehook/manifests).
CHART_MANIFESTS = config/crd/bases/kubehook.io_webhooksubscriptions.yaml config/rbac/role.yaml \
	config/rbac/leader_election_role.yaml config/rbac/metrics_reader_role.yaml \
	config/rbac/webhooksubscription_viewer_role.yaml config/rbac/webhooksubscription_editor_role.yaml \
	config/rbac/webhooksubscription_admin_role.yaml config/policies/author.yaml

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests from the API markers, and copy them into the chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false webhook paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	cp $(CHART_MANIFESTS) charts/kubehook/manifests/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files '*.go' | grep -v '^hack/tools/')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: vet ## Check formatting (gofmt) and go vet; fails when gofmt would change a file.
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

.PHONY: fuzz
fuzz: ## Run every fuzz target (func Fuzz... in *_test.go) for FUZZTIME each (default 10s).
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' --exclude-dir=hack --exclude-dir=bin . | \
	while IFS=: read -r file fn; do \
	  f=$${fn#func }; dir=$$(dirname "$$file"); \
	  echo "fuzzing $$dir $$f for $(FUZZTIME)"; \
	  go test "$$dir" -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

.PHONY: test
test: manifests generate vet $(ENVTEST_ASSETS) $(HELM) ## Run every test, envtest included (builds the control plane first if missing).
	@git diff --quiet -- config api charts/kubehook/manifests || { echo "generated files are out of date: commit the output of 'make manifests generate'"; git --no-pager diff --stat -- config api charts/kubehook/manifests; exit 1; }
	go test ./... -p 1 -count=1 -timeout 30m

.PHONY: bench
bench: $(ENVTEST_ASSETS) ## Run the benchmarks; each prints its figures as "name: value" lines.
	go test ./... -run '^$$' -bench . -benchmem -count=1 -timeout 30m

##@ Build

.PHONY: build
build: ## Build the kubehook binary into bin/.
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/kubehook .

.PHONY: run
run: tools manifests ## Run kubehook: against the cluster in KUBECONFIG, or a local control plane when there is none (extra flags: ARGS=...).
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/kubehook-run ./hack/run
	exec $(LOCALBIN)/kubehook-run $(ARGS)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests $(KUBECTL) ## Install the CRDs into the cluster in KUBECONFIG.
	$(KUSTOMIZE) config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests $(KUBECTL) ## Remove the CRDs from the cluster in KUBECONFIG.
	$(KUSTOMIZE) config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUBECTL) ## Deploy kubehook to the cluster in KUBECONFIG, with image IMG.
	$(KUSTOMIZE) config/default | sed 's|image: controller:latest|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUBECTL) ## Remove kubehook from the cluster in KUBECONFIG.
	$(KUSTOMIZE) config/default | $(KUBECTL) delete --ignore-not-found -f -

##@ Tools

.PHONY: tools
tools: $(CONTROLLER_GEN) $(CRANE) $(K8SBIN)/kube-apiserver $(K8SBIN)/etcd $(KUBECTL) $(HELM) ## Build controller-gen, crane, kube-apiserver, etcd, kubectl and helm into bin/.

TOOLS_MOD = hack/tools/go.mod hack/tools/go.sum

$(CONTROLLER_GEN): $(TOOLS_MOD)
	@echo "building controller-gen into $@"
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(CRANE): $(TOOLS_MOD)
	@echo "building crane into $@"
	cd hack/tools && go build -o $@ github.com/google/go-containerregistry/cmd/crane

$(K8SBIN)/kube-apiserver: $(TOOLS_MOD) hack/tools/cmd/kube-apiserver/main.go
	@echo "building kube-apiserver $(K8S_VERSION) into $@ (the first build takes about 5 minutes; later ones use the Go build cache)"
	cd hack/tools && go build -ldflags "$(K8S_LDFLAGS)" -o $@ ./cmd/kube-apiserver

$(KUBECTL): $(TOOLS_MOD) hack/tools/cmd/kubectl/main.go
	@echo "building kubectl $(K8S_VERSION) into $@ (the first build takes a minute or two)"
	cd hack/tools && go build -ldflags "$(K8S_LDFLAGS)" -o $@ ./cmd/kubectl

$(HELM): hack/tools/helm/go.mod hack/tools/helm/go.sum
	@echo "building helm into $@ (about 4 minutes the first time)"
	cd hack/tools/helm && go build -o $@ helm.sh/helm/v4/cmd/helm

$(K8SBIN)/etcd: hack/tools/etcd/go.mod hack/tools/etcd/go.sum hack/tools/etcd/main.go
	@echo "building etcd into $@ (about 30 seconds the first time)"
	cd hack/tools/etcd && go build -o $@ .
