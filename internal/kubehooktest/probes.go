package kubehooktest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// poll is how often the waits below ask again.
const poll = 100 * time.Millisecond

// Ready returns nil once kubehook at c's addresses is ready as a producer
// sees it: /readyz answers 200 and the sources server accepts connections
// (it opens only once the subscriptions are loaded).
func (c *Config) Ready() error {
	resp, err := http.Get("http://" + c.ProbeAddr + "/readyz")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	conn, err := net.DialTimeout("tcp", c.EventsAddr, time.Second)
	if err != nil {
		return fmt.Errorf("sources server: %w", err)
	}
	return conn.Close()
}

// WaitReady waits up to timeout until kubehook at c's addresses is Ready.
// It fails the test at once when running returns an error (kubehook
// stopped); for a kubehook run in the test's own process, running says
// whether app.Run returned.
func WaitReady(t testing.TB, c *Config, timeout time.Duration, running func() error) {
	t.Helper()
	waitFor(t, timeout, running, c.Ready, "kubehook not ready")
}

// WaitReady waits up to timeout until the process is Ready; it fails the
// test at once if the process exits.
func (p *Kubehook) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, p.Running, p.Ready, p.String()+" not ready")
}

// WaitLive waits up to timeout until /healthz answers 200: the process is
// up, its queue set up, its subscriptions perhaps not yet loaded. It fails
// the test at once if the process exits.
func (p *Kubehook) WaitLive(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, p.Running, func() error {
		resp, err := http.Get("http://" + p.ProbeAddr + "/healthz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	}, p.String()+" not live")
}

// waitFor polls check until it returns nil, failing the test when running
// returns an error, or after timeout with failure and check's last error.
func waitFor(t testing.TB, timeout time.Duration, running, check func() error, failure string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := running(); err != nil {
			t.Fatal(err)
		}
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %v", failure, timeout, err)
		}
		<-tick.C
	}
}
