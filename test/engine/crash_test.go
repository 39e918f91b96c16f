package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/kubehook/kubehook/internal/intake"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// The parent test and its child processes agree on these.
const (
	crashChildEnv   = "KUBEHOOK_CRASH_CHILD"        // "1" in a child
	crashDataDirEnv = "KUBEHOOK_CRASH_DATA_DIR"     // the queue's data directory
	crashURLEnv     = "KUBEHOOK_CRASH_RECEIVER_URL" // the parent's receiver
	crashPublishEnv = "KUBEHOOK_CRASH_PUBLISH"      // "1": publish the events

	crashEvents    = 5000
	crashAckWait   = 2 * time.Second
	crashPublished = "kubehook-crash-child: published"
	// crashLifetime bounds a child that is never killed.
	crashLifetime = 3 * time.Minute
)

// TestKilledProcessLosesNothing: a kubehook process killed with SIGKILL in
// the middle of a backlog loses no delivery. A child process publishes
// crashEvents events (Publish returns once they are durable) and starts
// delivering them to a slow receiver in this process; it is killed after
// some of them arrived, and a second process on the same data directory
// delivers the rest. Every event arrives; those that arrive twice carry the
// webhook-id of their first copy, so receivers can deduplicate.
func TestKilledProcessLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two child processes for several seconds")
	}
	rec := newCrashReceiver(t)
	dir := t.TempDir() // before the children's cleanups: removed after they are gone

	begin := time.Now()
	first := startCrashChild(t, dir, rec.URL, true)
	killAt := 1500
	rec.await(t, first, 60*time.Second, func(distinct int) bool { return first.hasPublished() && distinct >= killAt })
	first.kill(t)
	killed := rec.snapshot()
	t.Logf("first process killed after %s: %d distinct events received (%d requests)",
		time.Since(begin).Round(time.Millisecond), killed.distinct, killed.requests)

	restart := time.Now()
	second := startCrashChild(t, dir, rec.URL, false)
	rec.await(t, second, 90*time.Second, func(distinct int) bool { return distinct == crashEvents })
	done := rec.snapshot()
	t.Logf("second process delivered the remaining %d events in %s; %d requests in all, %d duplicates (%d of them after the restart)",
		crashEvents-killed.distinct, time.Since(restart).Round(time.Millisecond), done.requests, done.duplicates, done.duplicates-killed.duplicates)
	if done.malformed > 0 {
		t.Errorf("%d requests carried no event number e-<0..%d>", done.malformed, crashEvents-1)
	}
	if len(done.idChanged) > 0 {
		t.Errorf("%d duplicates carried another webhook-id than their first copy, e.g. %s", len(done.idChanged), done.idChanged[0])
	}
	if lost := crashEvents - done.distinct; lost != 0 {
		t.Errorf("%d events lost", lost)
	}
}

// TestCrashChild is the kubehook process of TestKilledProcessLosesNothing;
// it runs only as that test's child. It registers the subscription, starts
// the dispatcher on the shared data directory, publishes the events when
// asked to, and delivers until it is killed.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("the child process of TestKilledProcessLosesNothing")
	}
	// The parent holds stdin open: end with it, whatever becomes of the parent.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}()

	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{DataDir: os.Getenv(crashDataDirEnv), AckWait: crashAckWait})
	if err != nil {
		t.Fatal(err)
	}
	// The registry is in memory: register the subscription again, same
	// name and UID, before consuming, as the controller would on start.
	reg := subscriptions.New()
	reg.Upsert(crashSubscription(os.Getenv(crashURLEnv)))
	s := sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	d := dispatcher.New(q, reg, s, discardOutcomes{}, dispatcher.Options{
		// Below the ack wait, as it must be.
		ProgressInterval: crashAckWait / 4,
	})
	stopped := make(chan error, 1)
	go func() { stopped <- d.Start(ctx) }()

	if os.Getenv(crashPublishEnv) == "1" {
		pub := &intake.Publisher{Registry: reg, Queue: q}
		const batch = 250
		for n := 0; n < crashEvents; n += batch {
			events := make([]intake.Event, 0, batch)
			for i := n; i < min(n+batch, crashEvents); i++ {
				events = append(events, tagPushNumbered(t, "acme/web", i))
			}
			if queued, err := pub.Publish(ctx, events...); err != nil || queued != len(events) {
				t.Fatalf("Publish = %d, %v; want %d deliveries", queued, err, len(events))
			}
		}
		fmt.Println(crashPublished)
	}

	select {
	case err := <-stopped:
		t.Fatalf("dispatcher stopped: %v", err)
	case <-time.After(crashLifetime):
		t.Fatal("not killed by the parent test")
	}
}

// crashSubscription is the one subscription of TestKilledProcessLosesNothing.
func crashSubscription(endpoint string) *subscriptions.Subscription {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: "acme", Endpoint: endpoint}
	return &subscriptions.Subscription{
		ID:  types.NamespacedName{Namespace: "acme", Name: "crash"},
		UID: types.UID("uid-crash"), Type: kubehookv1.TagPush, Key: "acme", Endpoint: endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
	}
}

// crashChild is a running child process.
type crashChild struct {
	cmd       *exec.Cmd
	published chan struct{} // closed when the child has published the events
	exited    chan struct{} // closed when the child has exited
	err       error         // of Wait, once exited is closed
	output    *bytes.Buffer // stdout and stderr, once exited is closed
}

// startCrashChild runs TestCrashChild in a new process of this test binary,
// killed at the end of the test if it is still running.
func startCrashChild(t *testing.T, dir, url string, publish bool) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v",
		"-test.timeout="+(crashLifetime+time.Minute).String())
	pub := "0"
	if publish {
		pub = "1"
	}
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashDataDirEnv+"="+dir, crashURLEnv+"="+url, crashPublishEnv+"="+pub)
	// The child ends when this pipe closes: when the test process exits,
	// however it exits.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, published: make(chan struct{}), exited: make(chan struct{}), output: &bytes.Buffer{}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		var out bytes.Buffer
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
			if sc.Text() == crashPublished {
				close(c.published)
			}
		}
		_, _ = io.Copy(&out, stdout) // a line too long for the scanner
		c.err = cmd.Wait()
		out.Write(stderr.Bytes())
		c.output = &out
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.kill(t)
		_ = stdin.Close()
	})
	return c
}

func (c *crashChild) hasPublished() bool {
	select {
	case <-c.published:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Errorf("killing the child: %v", err)
	}
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("child %d still running 30s after SIGKILL", c.cmd.Process.Pid)
	}
}

// crashReceiver is the slow endpoint of TestKilledProcessLosesNothing. It
// records the event number of every request and the webhook-id of its
// first copy.
type crashReceiver struct {
	*httptest.Server
	slots   chan struct{} // bounds the requests answered at once
	changed chan struct{} // signalled after every new event number

	mu      sync.Mutex
	firstID map[int]string // event number: webhook-id of its first copy
	counts  crashCounts
}

type crashCounts struct {
	requests, distinct, duplicates, malformed int
	idChanged                                 []string
}

func newCrashReceiver(t *testing.T) *crashReceiver {
	r := &crashReceiver{
		slots:   make(chan struct{}, 4),
		changed: make(chan struct{}, 1),
		firstID: map[int]string{},
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Contents struct {
				Tag string `json:"tag"`
			} `json:"contents"`
		}
		err := json.NewDecoder(req.Body).Decode(&body)
		n, ok := -1, false
		if tag, cut := strings.CutPrefix(body.Contents.Tag, "e-"); err == nil && cut {
			n, err = strconv.Atoi(tag)
			ok = err == nil && n >= 0 && n < crashEvents
		}
		// A slow endpoint: a few milliseconds per request, a few at once.
		r.slots <- struct{}{}
		time.Sleep(3 * time.Millisecond)
		<-r.slots
		r.record(n, ok, req.Header.Get("webhook-id"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *crashReceiver) record(n int, ok bool, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts.requests++
	switch first, seen := r.firstID[n]; {
	case !ok:
		r.counts.malformed++
	case !seen:
		r.firstID[n] = id
		r.counts.distinct++
		select {
		case r.changed <- struct{}{}:
		default:
		}
	default:
		r.counts.duplicates++
		if id != first {
			r.counts.idChanged = append(r.counts.idChanged, fmt.Sprintf("e-%d: %q then %q", n, first, id))
		}
	}
}

func (r *crashReceiver) snapshot() crashCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts
	c.idChanged = append([]string(nil), c.idChanged...)
	return c
}

// await waits until done holds for the number of distinct events received,
// checked after each new one and once the child has published. It fails
// the test if the child exits or the timeout passes first.
func (r *crashReceiver) await(t *testing.T, c *crashChild, timeout time.Duration, done func(distinct int) bool) {
	t.Helper()
	deadline := time.After(timeout)
	published := c.published
	for !done(r.snapshot().distinct) {
		select {
		case <-r.changed:
		case <-published:
			published = nil // closed: look once
		case <-c.exited:
			t.Fatalf("child exited: %v\n%s", c.err, c.output)
		case <-deadline:
			s := r.snapshot()
			t.Fatalf("after %s: %d distinct events of %d received, %d requests; child published: %v",
				timeout, s.distinct, crashEvents, s.requests, c.hasPublished())
		}
	}
}
