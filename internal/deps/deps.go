// Package deps pins modules the event sources are being built on, until
// their importers land. It holds no code.
package deps

import (
	_ "github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
)
