package delivery

import (
	"testing"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestKubehookChild is the kubehook process of this package's tests; it
// runs only as their child (see kubehooktest.RunChild).
func TestKubehookChild(t *testing.T) { kubehooktest.RunChild(t) }

// kubehook is a kubehook child process with the readings these tests make
// of it.
type kubehook struct{ *kubehooktest.Kubehook }

// start runs kubehook in a new child process against the control plane
// TestMain starts, with the functional tests' flags, changed by opts
// (kubehooktest.WithFlags overrides them, WithKubeconfig uses another
// user's credentials), and waits until it is ready: every test starts with
// a kubehook that accepts events.
func start(t *testing.T, opts ...kubehooktest.Option) *kubehook {
	t.Helper()
	opts = append([]kubehooktest.Option{
		kubehooktest.WithKubeconfig(cp.Kubeconfig),
		kubehooktest.WithFlags(kubehooktest.FunctionalFlags()...),
	}, opts...)
	p := &kubehook{kubehooktest.Start(t, opts...)}
	p.WaitReady(t, apiTimeout)
	return p
}

// restart runs a new kubehook process with p's configuration: the same
// data directory, token and addresses. p should be gone (killed or
// terminated).
func (p *kubehook) restart(t *testing.T) *kubehook {
	t.Helper()
	return &kubehook{p.Restart(t)}
}

// postInBatches posts events, size to a request, and returns the totals
// of the answers. It fails the test at the first request not accepted.
func (p *kubehook) postInBatches(t *testing.T, events []kubehooktest.NativeEvent, size int) kubehooktest.Accepted {
	t.Helper()
	var total kubehooktest.Accepted
	for i := 0; i < len(events); i += size {
		a, err := p.PostEvents(events[i:min(i+size, len(events))]...)
		if err != nil {
			t.Fatalf("posting events %d..%d: %v", i, min(i+size, len(events))-1, err)
		}
		total.Accepted += a.Accepted
		total.Deliveries += a.Deliveries
	}
	return total
}
