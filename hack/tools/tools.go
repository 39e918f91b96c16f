//go:build tools

// Package tools pins the build tools kubehook uses; `make tools` builds them into bin/.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
