package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// localRegistry is the CNCF Distribution registry of `make run`, on
// loopback, with its notifications pointed at kubehook's sources server.
type localRegistry struct {
	reg *registry.Registry
}

// newLocalRegistry configures a registry storing under dir, notifying
// notifyURL with the bearer token.
func newLocalRegistry(ctx context.Context, addr, dir, notifyURL, token string) (*localRegistry, error) {
	cfg := &configuration.Configuration{}
	cfg.Version = configuration.MajorMinorVersion(0, 1)
	cfg.Log.Level = "warn"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Addr = addr
	cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": dir}}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	cfg.Notifications = configuration.Notifications{Endpoints: []configuration.Endpoint{{
		Name:      "kubehook",
		URL:       notifyURL,
		Headers:   http.Header{"Authorization": []string{"Bearer " + token}},
		Timeout:   5 * time.Second,
		Threshold: 10,
		Backoff:   time.Second,
	}}}
	reg, err := registry.NewRegistry(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("local registry: %w", err)
	}
	return &localRegistry{reg: reg}, nil
}

// Start serves until ctx ends.
func (l *localRegistry) Start(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.reg.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("local registry: %w", err)
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return l.reg.Shutdown(shut)
	}
}

// sourceToken returns the token the local registry and kubehook share,
// creating it on first use.
func sourceToken(state string) (path string, err error) {
	path = filepath.Join(state, "distribution-token")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}
