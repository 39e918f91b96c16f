//go:build tools

// Package tools pins the helm CLI, built by `make tools` into bin/ with
// `go build helm.sh/helm/v4/cmd/helm`.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
