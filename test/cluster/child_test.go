package cluster

import (
	"testing"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestKubehookChild is the kubehook process of this package's tests; it
// runs only as their child (see kubehooktest.RunChild).
func TestKubehookChild(t *testing.T) { kubehooktest.RunChild(t) }

// kubehook is one replica: a kubehook child process with the readings
// these tests make of it.
type kubehook struct{ *kubehooktest.Kubehook }

// startReplica runs the replica name in a new child process against the
// control plane and NATS cluster TestMain starts, with the functional
// tests' flags, streams on all three NATS servers, leader election with
// its Lease in electionNS, and then flags; and waits until it is live.
// Callers start replicas one after the other, each once the one before is
// up, as the shipped StatefulSet starts its Pods in order: replicas
// creating the same streams at once on a fresh NATS cluster can get no
// answer and exit, a start-up problem these tests are not about.
func startReplica(t testing.TB, name, electionNS string, flags ...string) *kubehook {
	t.Helper()
	p := &kubehook{kubehooktest.Start(t,
		kubehooktest.Named(name),
		kubehooktest.WithKubeconfig(cp.Kubeconfig),
		kubehooktest.WithFlags(kubehooktest.FunctionalFlags()...),
		// The allowance of status writes is reckoned from it.
		kubehooktest.WithFlags("--status-sync-period="+statusSyncPeriod.String()),
		kubehooktest.WithFlags(
			"--nats-url="+nats.url(),
			"--nats-replicas=3",
			"--leader-elect",
			"--leader-election-namespace="+electionNS,
		),
		kubehooktest.WithFlags(flags...),
	)}
	p.WaitLive(t, apiTimeout)
	return p
}

// successes is how many deliveries p made: attempts answered 2xx, over
// every event type.
func (p *kubehook) successes() (int, error) {
	n, err := p.Metric("kubehook_deliveries_total", map[string]string{"result": "success"})
	return int(n), err
}

// leaderElectionID is the Lease kubehook's replicas elect a leader with.
const leaderElectionID = "kubehook.kubehook.io"

// leads reports whether p holds the leader-election Lease, as
// controller-runtime's leader_election_master_status says.
func (p *kubehook) leads() (bool, error) {
	n, err := p.Metric("leader_election_master_status", map[string]string{"name": leaderElectionID})
	return n == 1, err
}
