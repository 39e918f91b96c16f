package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// limitedInFlight is the replicas' --max-in-flight-per-subscription in
	// TestInFlightLimitIsOneAcrossReplicas, and limitedEvents the events
	// posted for its one subscription, limitedBatch to a request.
	limitedInFlight = 4
	limitedEvents   = 120
	limitedBatch    = 10
	// limitedDelay is how long the receiver takes to answer: long enough
	// that the replicas' attempts overlap.
	limitedDelay = 150 * time.Millisecond
	// limitedTimeout bounds the wait for every delivery: at the limit they
	// take limitedEvents/limitedInFlight*limitedDelay, under 5 s.
	limitedTimeout = 60 * time.Second
)

// TestInFlightLimitIsOneAcrossReplicas runs three replicas with
// --max-in-flight-per-subscription=4 and posts the events of one
// subscription to all of them, to an endpoint that answers slowly. The
// endpoint must never see more than the limit at once, bar one attempt
// per other replica while the subscription moves to its line (each
// replica starts at most one from the shared consumer); each replica
// alone would allow the limit, so three would allow three times it.
func TestInFlightLimitIsOneAcrossReplicas(t *testing.T) {
	electionNS := cp.NewNamespace(t, "kubehook-system")
	ns := cp.NewNamespace(t, "limit")
	rcv := kubehooktest.NewReceiver(t, kubehooktest.AnswerAfter(limitedDelay), kubehooktest.MaxConcurrent(1000))
	const repo = "slow"
	if err := k8s.Create(t.Context(), kubehooktest.TagPushSubscription(ns, repo, ns+"/"+repo, rcv.Endpoint(repo))); err != nil {
		t.Fatalf("creating WebhookSubscription: %v", err)
	}
	replicas := make([]*kubehook, replicaCount)
	for i := range replicas {
		replicas[i] = startReplica(t, fmt.Sprintf("limited-%d", i), electionNS,
			fmt.Sprintf("--max-in-flight-per-subscription=%d", limitedInFlight))
	}
	waitReplicasReady(t, replicas, make([]replicaFigures, replicaCount))
	if _, err := waitStatus(ns, []string{repo}, apiTimeout, notReady); err != nil {
		t.Fatalf("subscription not Ready: %v", err)
	}

	var want []kubehooktest.Pair
	for b, first := 0, 0; first < limitedEvents; b, first = b+1, first+limitedBatch {
		batch := make([]kubehooktest.NativeEvent, 0, limitedBatch)
		for n := first; n < first+limitedBatch; n++ {
			batch = append(batch, kubehooktest.TagPushEvent(ns+"/"+repo, n))
			want = append(want, kubehooktest.Pair{Sub: repo, Event: kubehooktest.NumberedTag(n)})
		}
		if _, err := replicas[b%replicaCount].PostEvents(batch...); err != nil {
			t.Fatalf("posting to %s: %v", replicas[b%replicaCount].Name, err)
		}
	}
	if _, err := rcv.Await(limitedTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Answered >= len(want) }, allRunning(replicas)); err != nil {
		missing, _ := rcv.Unanswered(want)
		t.Fatalf("%v: %d of %d deliveries not answered", err, len(missing), len(want))
	}

	most, bound := rcv.MostInFlight(repo), limitedInFlight+replicaCount-1
	t.Logf("at most %d requests at once (limit %d, %d replicas)", most, limitedInFlight, replicaCount)
	if most > bound {
		t.Errorf("the endpoint saw %d requests at once; the limit across the replicas is %d (at most %d while the subscription moves to its line)",
			most, limitedInFlight, bound)
	}
	if most < limitedInFlight {
		t.Errorf("the endpoint saw at most %d requests at once: the limit of %d was never used", most, limitedInFlight)
	}
}
