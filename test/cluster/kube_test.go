package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// apiTimeout bounds waiting for kubehook to act on an object.
	apiTimeout = 30 * time.Second
	poll       = 100 * time.Millisecond
)

var (
	// cp is the control plane TestMain starts; its admin kubeconfig is
	// the one the kubehook children use, as a user points kubehook at a
	// cluster.
	cp *kubehooktest.ControlPlane
	// k8s is cp's admin client.
	k8s client.WithWatch
)

// listSubscriptions returns the subscriptions of ns by name.
func listSubscriptions(g Gomega, ns string) (map[string]*kubehookv1.WebhookSubscription, string) {
	var list kubehookv1.WebhookSubscriptionList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := make(map[string]*kubehookv1.WebhookSubscription, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, list.ResourceVersion
}

// waitStatus waits until short returns "" for every subscription of ns
// named in names, and returns the resource version of the list that
// passed. The failure names the subscriptions still short, and why.
func waitStatus(ns string, names []string, timeout time.Duration, short func(*kubehookv1.WebhookSubscription) string) (string, error) {
	var rv, failure string
	// A Gomega of its own, so a timeout is returned rather than ending the test.
	g := NewGomega(func(message string, _ ...int) { failure = message })
	g.Eventually(func(g Gomega) {
		subs, listRV := listSubscriptions(g, ns)
		var pending []string
		for _, name := range names {
			if why := short(subs[name]); why != "" {
				pending = append(pending, name+": "+why)
			}
		}
		slices.Sort(pending)
		g.Expect(pending).To(BeEmpty(), "%d of %d subscriptions:\n%s",
			len(pending), len(names), strings.Join(pending[:min(len(pending), 5)], "\n"))
		rv = listRV
	}, timeout, poll).Should(Succeed())
	if failure != "" {
		return "", errors.New(failure)
	}
	return rv, nil
}

// notReady says why sub is not Ready=True for its current generation, or
// "" when it is.
func notReady(sub *kubehookv1.WebhookSubscription) string {
	return kubehooktest.ReadyShortOf(sub, metav1.ConditionTrue, "")
}

// notDelivering says why sub is not Ready with a lastSuccessfulAt, or "".
func notDelivering(sub *kubehookv1.WebhookSubscription) string {
	if why := notReady(sub); why != "" {
		return why
	}
	if sub.Status.LastSuccessfulAt == nil {
		return "no status.lastSuccessfulAt"
	}
	return ""
}

// statusWrites counts, per subscription, the changes of its status seen
// by a watch, and notes a lastSuccessfulAt that went back in time: what
// two writers folding in different outcomes would write.
type statusWrites struct {
	since time.Time
	done  chan struct{} // closed when the watch ends

	mu        sync.Mutex
	last      map[string]kubehookv1.WebhookSubscriptionStatus
	writes    map[string]int
	backwards []string
}

// watchStatusWrites watches the subscriptions of ns from resource version
// rv until the end of the test.
func watchStatusWrites(t *testing.T, ns, rv string) *statusWrites {
	t.Helper()
	w, err := k8s.Watch(context.Background(), &kubehookv1.WebhookSubscriptionList{}, client.InNamespace(ns),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	if err != nil {
		t.Fatalf("watching the subscriptions: %v", err)
	}
	sw := &statusWrites{
		since:  time.Now(),
		done:   make(chan struct{}),
		last:   map[string]kubehookv1.WebhookSubscriptionStatus{},
		writes: map[string]int{},
	}
	t.Cleanup(w.Stop)
	go func() {
		defer close(sw.done)
		for ev := range w.ResultChan() {
			if sub, ok := ev.Object.(*kubehookv1.WebhookSubscription); ok && ev.Type == watch.Modified {
				sw.record(sub)
			}
		}
	}()
	return sw
}

func (sw *statusWrites) record(sub *kubehookv1.WebhookSubscription) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	prev, seen := sw.last[sub.Name]
	sw.last[sub.Name] = *sub.Status.DeepCopy()
	if seen && equality.Semantic.DeepEqual(prev, sub.Status) {
		return
	}
	sw.writes[sub.Name]++
	if seen && prev.LastSuccessfulAt != nil && (sub.Status.LastSuccessfulAt == nil || sub.Status.LastSuccessfulAt.Before(prev.LastSuccessfulAt)) {
		sw.backwards = append(sw.backwards, fmt.Sprintf("%s: lastSuccessfulAt %v after %v", sub.Name, sub.Status.LastSuccessfulAt, prev.LastSuccessfulAt))
	}
}

// snapshot returns the writes per subscription so far, the most of any
// subscription, and the moves of lastSuccessfulAt back in time.
func (sw *statusWrites) snapshot() (writes map[string]int, most int, backwards []string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	writes = make(map[string]int, len(sw.writes))
	for name, n := range sw.writes {
		writes[name] = n
		most = max(most, n)
	}
	return writes, most, slices.Clone(sw.backwards)
}
