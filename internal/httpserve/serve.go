// Package httpserve runs an http.Server the way kubehook's servers (event
// sources, DTR API) are run by the manager: until the context ends, then a
// graceful shutdown.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln until ctx ends, then shuts it down: requests in
// flight get up to grace to finish, with contexts that outlive ctx (their
// API calls and deliveries must not be cancelled mid-way); after grace the
// remaining connections are closed. It sets srv.BaseContext.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
