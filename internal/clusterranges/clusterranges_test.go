package clusterranges

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
	"github.com/kubehook/kubehook/internal/testenv"
)

// One control plane and one manager, wired as app.Run wires them: the
// Reader publishes into a sender that awaits the cluster ranges.
var (
	k8s       client.Client // uncached, for the test's own writes
	cached    client.Client // the manager's
	snd       *sender.Sender
	published = &recorder{}
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, setUp))
}

func setUp(_ *envtest.Environment, cfg *rest.Config) (func(), error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	var err error
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: CacheByObject()},
	})
	if err != nil {
		return nil, err
	}
	cached = mgr.GetClient()
	snd = sender.New(sender.Options{AwaitClusterRanges: true})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Setup(ctx, mgr, func(service, pod []netip.Prefix) {
		snd.SetClusterRanges(service, pod)
		published.set(service, pod)
	}, ctrl.Log.WithName("cluster-ranges"))
	if err != nil {
		cancel()
		return nil, err
	}
	if err := mgr.Add(r); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}

// recorder keeps the last set the Reader published.
type recorder struct {
	mu           sync.Mutex
	service, pod []string
}

func (r *recorder) set(service, pod []netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.service, r.pod = strs(service), strs(pod)
}

func (r *recorder) services() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.service)
}

func (r *recorder) pods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pod)
}

func strs(ps []netip.Prefix) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// refusal sends to endpoint and returns why the sender refused it, or
// fails the test when it was not refused. Only call it for addresses the
// guard refuses one way or another: it makes a real attempt otherwise.
func refusal(g Gomega, endpoint string) string {
	res := snd.Send(context.Background(), &subscriptions.Subscription{Endpoint: endpoint, Delivery: subscriptions.Delivery{Timeout: 5 * time.Second}}, sender.Request{ID: "msg_1", Body: []byte("{}")})
	var e *sender.AddressNotAllowedError
	g.Expect(res.Err).To(BeAssignableToTypeOf(e), "Send = %+v", res)
	g.Expect(res.NotSent).To(BeTrue())
	return res.Err.(*sender.AddressNotAllowedError).Reason
}

func node(name string, podCIDRs ...string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubehook.io/test": name}},
		Spec:       corev1.NodeSpec{PodCIDRs: podCIDRs},
	}
}

// The control plane's own ServiceCIDR ("kubernetes", from
// --service-cluster-ip-range) is read at start, before anything is created.
func TestReadsTheDefaultServiceCIDR(t *testing.T) {
	g := NewWithT(t)
	var def networkingv1.ServiceCIDR
	// The API server creates it shortly after it starts serving.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: "kubernetes"}, &def)).To(Succeed())
		g.Expect(def.Spec.CIDRs).NotTo(BeEmpty())
	}).Should(Succeed())
	g.Eventually(published.services).Should(ContainElements(def.Spec.CIDRs))
	in := netip.MustParsePrefix(def.Spec.CIDRs[0]).Addr().Next()
	g.Expect(refusal(g, "http://"+addrPort(in, 443)+"/")).To(Equal("cluster Service range"))
}

// A Node's public Pod range and a ServiceCIDR's public range are refused
// once they exist, and a Node's range is released when the Node goes.
func TestRefusesThePodAndServiceRangesAsTheyChange(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)

	public := node("node-public", "93.184.0.0/24", "2606:2800:220::/64")
	doc := node("node-doc", "198.51.100.0/24")
	svc := &networkingv1.ServiceCIDR{
		ObjectMeta: metav1.ObjectMeta{Name: "extra"},
		Spec:       networkingv1.ServiceCIDRSpec{CIDRs: []string{"34.118.224.0/20"}},
	}
	for _, o := range []client.Object{public, doc, svc} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, o := range []client.Object{public, doc, svc} {
			_ = k8s.Delete(context.Background(), o)
		}
	})

	// Wait for the public ranges before sending there: until the sender
	// has them, an attempt to a public address would really be made.
	g.Eventually(published.pods).Should(ContainElements("93.184.0.0/24", "2606:2800:220::/64", "198.51.100.0/24"))
	g.Eventually(published.services).Should(ContainElement("34.118.224.0/20"))
	g.Expect(refusal(g, "http://93.184.0.10/")).To(Equal("cluster Pod range"))
	g.Expect(refusal(g, "https://[2606:2800:220::1]/")).To(Equal("cluster Pod range"))
	g.Expect(refusal(g, "http://[::ffff:93.184.0.10]/")).To(Equal("cluster Pod range"))
	g.Expect(refusal(g, "http://34.118.230.1:8080/")).To(Equal("cluster Service range"))
	g.Expect(refusal(g, "http://198.51.100.9/")).To(Equal("cluster Pod range"))

	// The cache keeps only what the ranges need of a Node.
	var got corev1.Node
	g.Expect(cached.Get(ctx, client.ObjectKeyFromObject(public), &got)).To(Succeed())
	g.Expect(got.Labels).To(BeEmpty())
	g.Expect(got.Spec.PodCIDRs).To(Equal(public.Spec.PodCIDRs))

	// A deleted Node's range is the documentation range it is again.
	g.Expect(k8s.Delete(ctx, doc)).To(Succeed())
	g.Eventually(func(g Gomega) string { return refusal(g, "http://198.51.100.9/") }).Should(Equal("documentation"))
	g.Expect(published.pods()).NotTo(ContainElement("198.51.100.0/24"))
	g.Expect(published.pods()).To(ContainElement("93.184.0.0/24"))

	// A second Node added later is read too.
	late := node("node-late", "203.0.113.0/24")
	g.Expect(k8s.Create(ctx, late)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), late) })
	g.Eventually(func(g Gomega) string { return refusal(g, "http://203.0.113.1/") }).Should(Equal("cluster Pod range"))
}

func addrPort(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }

func TestServesServiceCIDR(t *testing.T) {
	gv := networkingv1.SchemeGroupVersion
	without := meta.NewDefaultRESTMapper([]schema.GroupVersion{gv})
	with := meta.NewDefaultRESTMapper([]schema.GroupVersion{gv})
	with.Add(gv.WithKind("ServiceCIDR"), meta.RESTScopeRoot)
	if ok, err := servesServiceCIDR(without); ok || err != nil {
		t.Errorf("without the kind: %v, %v; want false, nil (skipped, not failed)", ok, err)
	}
	if ok, err := servesServiceCIDR(with); !ok || err != nil {
		t.Errorf("with the kind: %v, %v", ok, err)
	}
}

func TestTrimNode(t *testing.T) {
	n := node("n1", "10.244.1.0/24", "fd00:1::/64")
	n.UID, n.ResourceVersion = "uid-1", "42"
	n.Spec.PodCIDR = "10.244.1.0/24"
	n.Spec.ProviderID = "aws:///eu-west-1a/i-0123"
	n.Annotations = map[string]string{"a": "b"}
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"registry.example.com/big:1"}, SizeBytes: 1 << 30}}
	got, err := trimNode(n)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-1", ResourceVersion: "42"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:1::/64"}},
	}
	NewWithT(t).Expect(got).To(Equal(want))
	if other, _ := trimNode("not a node"); other != "not a node" {
		t.Errorf("trimNode of another object = %v", other)
	}
}
