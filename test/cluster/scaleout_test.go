package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubehook/kubehook/internal/kubehooktest"
	"github.com/kubehook/kubehook/internal/queue"
)

const (
	replicaCount  = 3
	subscriptions = 30
	// events are posted once, batchSize to a request, to the replicas in
	// turn; event n is pushed to repository repo-<n mod subscriptions>, so
	// it is one delivery to that repository's subscription.
	events    = 1500
	batchSize = 25
	// The receiver answers after receiverDelay, receiverConcurrency
	// requests at once, so the load lasts several seconds and the kills
	// land in the middle of it.
	receiverDelay       = 50 * time.Millisecond
	receiverConcurrency = 12
	// killAt and restartNATSAt are how many deliveries are answered before
	// a replica and a NATS server are killed, and before that server comes
	// back.
	killAt        = events * 2 / 5
	restartNATSAt = events * 7 / 10
	// afterKillTimeout bounds the wait for every delivery after the kills;
	// what the killed replica had in flight comes back after the queue's
	// ack wait (30s).
	afterKillTimeout = 60 * time.Second
	// minShare is the least share of the deliveries each replica must
	// make (a fair share is a third).
	minShare = 0.10
	// statusSyncPeriod is the children's --status-sync-period.
	statusSyncPeriod = time.Second
	// statusTimeout bounds the wait for status to show every delivery.
	statusTimeout = 30 * time.Second
)

// replicaFigures are what one kubehook replica did.
type replicaFigures struct {
	notReady      error // why it never became ready, or nil
	leader        bool  // it held the Lease when the kill came
	killed        bool
	posts         int // requests posted to it
	refused       int // of which not accepted
	lastRefusal   string
	events        int // events it accepted
	deliveries    int // deliveries it queued for them
	atKill        int // its deliveries (2xx answers) when the kill came
	final         int // its deliveries at the end (at the kill, if killed)
	metricProblem string
}

// TestThreeReplicasShareTheLoadAndLoseNothing runs three kubehook replicas
// with leader election on a three-server NATS JetStream cluster (streams
// R3) and posts events to all of them in turn. Every replica must accept
// events and deliver a share of them; a replica killed with SIGKILL and a
// NATS server shut down mid-load must lose no accepted delivery (what the
// killed replica had in flight is delivered by the others, duplicates
// carrying their first webhook-id); and status must come from one writer:
// every subscription Ready for its generation with lastSuccessfulAt set,
// lastSuccessfulAt never moving back, and no more status writes than one
// per sync period plus transitions.
func TestThreeReplicasShareTheLoadAndLoseNothing(t *testing.T) {
	begin := time.Now()
	electionNS := cp.NewNamespace(t, "kubehook-system")
	ns := cp.NewNamespace(t, "cluster")
	rcv := kubehooktest.NewReceiver(t, kubehooktest.AnswerAfter(receiverDelay), kubehooktest.MaxConcurrent(receiverConcurrency))

	// Subscriptions first: every replica then loads all of them before it
	// accepts events, however its index is filled.
	names := make([]string, subscriptions)
	for i := range names {
		names[i] = fmt.Sprintf("repo-%d", i)
		sub := kubehooktest.TagPushSubscription(ns, names[i], ns+"/"+names[i], rcv.Endpoint(names[i]))
		if err := k8s.Create(t.Context(), sub); err != nil {
			t.Fatalf("creating WebhookSubscription %s/%s: %v", ns, names[i], err)
		}
	}

	// One after the other (see startReplica).
	replicas := make([]*kubehook, replicaCount)
	for i := range replicas {
		replicas[i] = startReplica(t, fmt.Sprintf("replica-%d", i), electionNS)
	}
	figures := make([]replicaFigures, replicaCount)
	waitReplicasReady(t, replicas, figures)
	rv, err := waitStatus(ns, names, apiTimeout, notReady)
	if err != nil {
		t.Fatalf("subscriptions not Ready: %v", err)
	}
	writes := watchStatusWrites(t, ns, rv)
	t.Logf("%d replicas started, %d subscriptions ready after %s", replicaCount, subscriptions, time.Since(begin).Round(time.Millisecond))

	// Each request goes to the next replica; one that refuses it passes it
	// on, as a Service would on a refused connection.
	posted := time.Now()
	var want []kubehooktest.Pair
	for b, first := 0, 0; first < events; b, first = b+1, first+batchSize {
		batch := make([]kubehooktest.NativeEvent, 0, batchSize)
		var pairs []kubehooktest.Pair
		for n := first; n < min(first+batchSize, events); n++ {
			repo := names[n%subscriptions]
			batch = append(batch, kubehooktest.TagPushEvent(ns+"/"+repo, n))
			pairs = append(pairs, kubehooktest.Pair{Sub: repo, Event: kubehooktest.NumberedTag(n)})
		}
		accepted := false
		for try := 0; try < replicaCount && !accepted; try++ {
			i := (b + try) % replicaCount
			f := &figures[i]
			f.posts++
			a, err := replicas[i].PostEvents(batch...)
			if err != nil {
				f.refused++
				f.lastRefusal = err.Error()
				continue
			}
			f.events += a.Accepted
			f.deliveries += a.Deliveries
			// Every accepted event is owed its delivery, queued or not.
			want = append(want, pairs...)
			accepted = true
		}
		if !accepted {
			t.Fatalf("no replica accepted events %d..%d:\n%s", first, first+len(batch)-1, report(figures, nil))
		}
	}
	t.Logf("%d events posted in %s; %d deliveries answered by then", len(want), time.Since(posted).Round(time.Millisecond), rcv.Snapshot().Answered)

	before, err := rcv.Await(afterKillTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Answered >= killAt }, allRunning(replicas))
	if err != nil {
		t.Fatalf("before the kills: %v; %d of %d deliveries answered:\n%s", err, before.Answered, len(want), report(figures, replicas))
	}

	// Kill the leader, so leadership and status writing move too; without
	// a leader to be seen, the first replica.
	victim := 0
	for i, p := range replicas {
		if leads, err := p.leads(); err == nil && leads {
			victim = i
			figures[i].leader = true
		}
		if figures[i].atKill, err = p.successes(); err != nil {
			figures[i].metricProblem = err.Error()
		}
	}
	replicas[victim].Kill(t)
	figures[victim].killed = true
	figures[victim].final = figures[victim].atKill
	atKill := rcv.Snapshot()
	natsVictim := nats.streamLeader(queue.StreamName)
	if natsVictim == nil {
		natsVictim = nats.servers[0]
	}
	natsVictim.kill()
	killed := time.Now()
	t.Logf("after %s: SIGKILL of %s (leader: %v), shutdown of NATS server %s; %d of %d deliveries answered",
		killed.Sub(posted).Round(time.Millisecond), replicas[victim].Name, figures[victim].leader, natsVictim.name, atKill.Answered, len(want))

	survivors := append(append([]*kubehook(nil), replicas[:victim]...), replicas[victim+1:]...)
	_, midErr := rcv.Await(afterKillTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Answered >= restartNATSAt }, allRunning(survivors))
	if err := natsVictim.start(); err != nil {
		t.Errorf("restarting NATS server %s: %v", natsVictim.name, err)
	}
	t.Logf("NATS server %s restarted %s after the kills (%v); %d deliveries answered",
		natsVictim.name, time.Since(killed).Round(time.Millisecond), midErr, rcv.Snapshot().Answered)
	done, waitErr := rcv.Await(afterKillTimeout-time.Since(killed), func(s kubehooktest.ReceiverStats) bool { return s.Answered >= len(want) }, allRunning(survivors))
	for i, p := range replicas {
		if figures[i].killed {
			continue
		}
		if figures[i].final, err = p.successes(); err != nil {
			figures[i].metricProblem = err.Error()
		}
	}
	missing, neverArrived := rcv.Unanswered(want)
	t.Logf("%s after the kills (%v): %d of %d accepted deliveries answered, %d lost (%d never arrived); %d requests, %d duplicates\n%s",
		time.Since(killed).Round(time.Millisecond), waitErr, len(want)-len(missing), len(want), len(missing), neverArrived,
		done.Requests, done.Duplicates, report(figures, nil))

	if len(missing) > 0 {
		t.Errorf("%d of %d accepted deliveries lost: %d never arrived, %d arrived but were never answered to a waiting sender (waiting ended: %v), e.g. %v\n%s",
			len(missing), len(want), neverArrived, len(missing)-neverArrived, waitErr, missing[:min(len(missing), 5)], report(figures, nil))
	}
	checkShares(t, figures, replicas)
	if len(done.IDChanged) > 0 {
		t.Errorf("%d duplicates carried another webhook-id than their first copy, e.g. %s", len(done.IDChanged), done.IDChanged[0])
	}
	if done.Malformed > 0 {
		t.Errorf("%d requests named no event", done.Malformed)
	}

	// One writer: status shows the deliveries, consistently and coalesced.
	if _, err := waitStatus(ns, names, statusTimeout, notDelivering); err != nil {
		t.Errorf("status after the load: %v", err)
	}
	window := time.Since(writes.since)
	allowed := int(window/statusSyncPeriod) + 5
	perSub, most, backwards := writes.snapshot()
	var over []string
	for _, name := range names {
		if perSub[name] > allowed {
			over = append(over, fmt.Sprintf("%s: %d", name, perSub[name]))
		}
	}
	t.Logf("status writes in %s: at most %d for one subscription (allowed %d); test took %s",
		window.Round(time.Millisecond), most, allowed, time.Since(begin).Round(time.Millisecond))
	if len(over) > 0 {
		t.Errorf("%d subscriptions had more than %d status writes in %s (one per %s sync period plus transitions): %s",
			len(over), allowed, window.Round(time.Second), statusSyncPeriod, strings.Join(over[:min(len(over), 5)], ", "))
	}
	if len(backwards) > 0 {
		t.Errorf("status.lastSuccessfulAt went back in time %d times, as from writers with different outcomes: %s",
			len(backwards), strings.Join(backwards[:min(len(backwards), 5)], "; "))
	}
}

// waitReplicasReady waits, up to apiTimeout, until every replica is ready,
// and notes in figures why those that are not are not. A replica that
// exits ends the test; so does no replica becoming ready.
func waitReplicasReady(t testing.TB, replicas []*kubehook, figures []replicaFigures) {
	t.Helper()
	deadline := time.Now().Add(apiTimeout)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		pending := 0
		for i, p := range replicas {
			if err := p.Running(); err != nil {
				t.Fatal(err)
			}
			figures[i].notReady = p.Ready()
			if figures[i].notReady != nil {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	ready := 0
	for i, p := range replicas {
		if err := figures[i].notReady; err != nil {
			t.Errorf("%s not ready after %s (every replica must accept events): %s", p.Name, apiTimeout, oneLine(err))
		} else {
			ready++
		}
	}
	if ready == 0 {
		t.Fatalf("no replica ready after %s", apiTimeout)
	}
}

// checkShares fails the test unless every replica accepted the events
// posted to it and made at least minShare of the deliveries while all
// three ran, and each survivor at least minShare of all of them.
func checkShares(t *testing.T, figures []replicaFigures, replicas []*kubehook) {
	t.Helper()
	var atKill, total int
	for _, f := range figures {
		atKill += f.atKill
		total += f.final
	}
	for i, f := range figures {
		name := replicas[i].Name
		if f.refused > 0 {
			t.Errorf("%s refused %d of the %d requests posted to it; every replica must accept events (last: %s)", name, f.refused, f.posts, f.lastRefusal)
		}
		if float64(f.atKill) < minShare*float64(atKill) {
			t.Errorf("%s made %d of the %d deliveries before the kill (%.0f%%); every replica must make at least %.0f%%",
				name, f.atKill, atKill, percent(f.atKill, atKill), 100*minShare)
		}
		if !f.killed && float64(f.final) < minShare*float64(total) {
			t.Errorf("%s made %d of the %d deliveries in all (%.0f%%); every surviving replica must make at least %.0f%%",
				name, f.final, total, percent(f.final, total), 100*minShare)
		}
	}
}

// report is a line per replica: its state and what it accepted and delivered.
func report(figures []replicaFigures, replicas []*kubehook) string {
	var b strings.Builder
	for i, f := range figures {
		if replicas != nil {
			if n, err := replicas[i].successes(); err == nil {
				f.final = n
			}
		}
		var roles []string
		if f.leader {
			roles = append(roles, "leader")
		}
		if f.killed {
			roles = append(roles, "killed")
		}
		if f.notReady != nil {
			roles = append(roles, "never ready: "+oneLine(f.notReady))
		}
		fmt.Fprintf(&b, "  replica-%d [%s]: %d requests posted, %d refused, %d events accepted with %d deliveries queued; delivered %d before the kill, %d in all",
			i, strings.Join(roles, ", "), f.posts, f.refused, f.events, f.deliveries, f.atKill, f.final)
		if f.lastRefusal != "" {
			fmt.Fprintf(&b, "; last refusal: %s", f.lastRefusal)
		}
		if f.metricProblem != "" {
			fmt.Fprintf(&b, "; metrics: %s", f.metricProblem)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// oneLine is err's message on one line (a /readyz body has one per check).
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func percent(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// allRunning is an await check that fails once one of replicas has exited.
func allRunning(replicas []*kubehook) func() error {
	return func() error {
		var errs []error
		for _, p := range replicas {
			errs = append(errs, p.Running())
		}
		return errors.Join(errs...)
	}
}
