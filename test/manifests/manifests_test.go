// Package manifests checks what `make deploy` installs: config/default,
// rendered by `kubectl kustomize`, is accepted by a real kube-apiserver and
// etcd (envtest) in a server-side dry run, and runs kubehook so that the
// embedded queue survives rollouts and registries can reach the event
// sources.
package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"

	"github.com/kubehook/kubehook/internal/app"
	"github.com/kubehook/kubehook/internal/testenv"
)

const (
	namespace     = "kubehook-system"
	eventsService = "kubehook-events"
	eventsPort    = 8090
)

var (
	// kubectl is the kubectl binary, found beside kube-apiserver.
	kubectl string
	// kubeconfig is an admin kubeconfig of the control plane TestMain starts.
	kubeconfig string
	// rendered is the output of `kubectl kustomize config/default`.
	rendered []byte
	// objects are the rendered documents.
	objects []*unstructured.Unstructured
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir := testenv.AssetsDir()
	kubectl = filepath.Join(dir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		fmt.Fprintf(os.Stderr, "kubectl not found in %s: run `make tools` to build it, or set KUBEBUILDER_ASSETS\n", dir)
		return 1
	}
	out, err := runKubectl(nil, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubectl kustomize config/default: %v\n%s", err, out)
		return 1
	}
	rendered = out
	if objects, err = decode(rendered); err != nil {
		fmt.Fprintln(os.Stderr, "decoding the rendered manifests:", err)
		return 1
	}

	env, _, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	tmp, err := os.MkdirTemp("", "kubehook-manifests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	kubeconfig = filepath.Join(tmp, "kubeconfig")
	if err := testenv.WriteAdminKubeconfig(env, "manifests-admin", kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// runKubectl runs kubectl against the control plane (once TestMain has
// written its kubeconfig) and returns its combined output.
func runKubectl(stdin []byte, args ...string) ([]byte, error) {
	if kubeconfig != "" {
		args = append([]string{"--kubeconfig", kubeconfig}, args...)
	}
	cmd := exec.Command(kubectl, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}

// decode splits a multi-document YAML stream into objects.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
}

// ofKind returns the rendered objects of a kind, converted to their Go type.
func ofKind[T any](t *testing.T, gk schema.GroupKind) []*T {
	t.Helper()
	var out []*T
	for _, u := range objects {
		if u.GroupVersionKind().GroupKind() != gk {
			continue
		}
		obj := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
			t.Fatalf("converting %s %s: %v", gk.Kind, u.GetName(), err)
		}
		out = append(out, obj)
	}
	return out
}

// theStatefulSet returns the one StatefulSet of the manifests.
func theStatefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	sets := ofKind[appsv1.StatefulSet](t, schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	if len(sets) != 1 {
		t.Fatalf("want one StatefulSet running kubehook, got %d", len(sets))
	}
	return sets[0]
}

// manager returns the kubehook container and its options, parsed with
// kubehook's own flags, so an argument kubehook does not know fails here.
func manager(t *testing.T, sts *appsv1.StatefulSet) (*corev1.Container, *app.Options) {
	t.Helper()
	for i := range sts.Spec.Template.Spec.Containers {
		c := &sts.Spec.Template.Spec.Containers[i]
		if c.Name != "manager" {
			continue
		}
		opts := &app.Options{}
		fs := flag.NewFlagSet("kubehook", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		opts.BindFlags(fs)
		if err := fs.Parse(c.Args); err != nil {
			t.Fatalf("container manager: args %q: %v", c.Args, err)
		}
		return c, opts
	}
	t.Fatalf("StatefulSet %s has no container named manager", sts.Name)
	return nil, nil
}

// TestServerDryRun applies everything `make deploy` installs with a
// server-side dry run: the API server validates and admits every object
// (the StatefulSet and its claim template, the Services, RBAC, the CRD)
// without creating it.
func TestServerDryRun(t *testing.T) {
	// Objects in a namespace that does not exist fail even in a dry run, so
	// the namespace is created for real, with the manifests' own labels
	// (restricted Pod Security, which admission checks the pod template against).
	var nsDocs [][]byte
	for _, u := range objects {
		if u.GetKind() == "Namespace" {
			js, err := u.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			nsDocs = append(nsDocs, js)
		}
	}
	if len(nsDocs) == 0 {
		t.Fatal("the manifests create no Namespace")
	}
	for _, js := range nsDocs {
		if out, err := runKubectl(js, "apply", "--server-side", "-f", "-"); err != nil {
			t.Fatalf("creating the namespace: %v\n%s", err, out)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"client-side apply", []string{"apply", "--dry-run=server", "-f", "-"}},
		// What `make deploy` runs.
		{"server-side apply", []string{"apply", "--server-side", "--dry-run=server", "-f", "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runKubectl(rendered, tc.args...)
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			if bytes.Contains(out, []byte("would violate PodSecurity")) {
				t.Fatalf("the pod template violates the namespace's Pod Security level:\n%s", out)
			}
			t.Logf("kubectl %s:\n%s", strings.Join(tc.args, " "), out)
		})
	}
}

// TestQueueOnPersistentVolume checks that the embedded queue's data
// directory is a PersistentVolumeClaim of a one-replica StatefulSet: a
// rollout stops the old Pod before the new one opens the same volume.
func TestQueueOnPersistentVolume(t *testing.T) {
	if ds := ofKind[appsv1.Deployment](t, schema.GroupKind{Group: "apps", Kind: "Deployment"}); len(ds) != 0 {
		t.Errorf("want no Deployment (a rolling Deployment runs the new Pod beside the old one, on a volume of its own), got %d", len(ds))
	}
	sts := theStatefulSet(t)
	if n := ptr.Deref(sts.Spec.Replicas, 1); n != 1 {
		t.Errorf("StatefulSet replicas: want 1 (the embedded queue belongs to one Pod), got %d", n)
	}
	c, opts := manager(t, sts)
	if opts.NATSURL != "" {
		t.Fatalf("the manager uses an external NATS (--nats-url=%s), not the embedded queue these manifests keep", opts.NATSURL)
	}

	pod := sts.Spec.Template.Spec
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if filepath.Clean(c.VolumeMounts[i].MountPath) == filepath.Clean(opts.DataDir) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("nothing is mounted at the data dir %s", opts.DataDir)
	}
	for _, v := range pod.Volumes {
		if v.Name == mount.Name {
			t.Errorf("the data dir %s is the pod volume %q (emptyDir: %v), which lives only as long as the Pod; want a volumeClaimTemplate", opts.DataDir, v.Name, v.EmptyDir != nil)
		}
	}
	var claim *corev1.PersistentVolumeClaim
	for i := range sts.Spec.VolumeClaimTemplates {
		if sts.Spec.VolumeClaimTemplates[i].Name == mount.Name {
			claim = &sts.Spec.VolumeClaimTemplates[i]
		}
	}
	if claim == nil {
		t.Fatalf("the data dir %s is volume %q, which no volumeClaimTemplate provides", opts.DataDir, mount.Name)
	}
	if !slices.Contains(claim.Spec.AccessModes, corev1.ReadWriteOnce) {
		t.Errorf("claim %q access modes: want ReadWriteOnce, got %v", claim.Name, claim.Spec.AccessModes)
	}
	if q, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || q.IsZero() {
		t.Errorf("claim %q requests no storage", claim.Name)
	}
	if claim.Spec.StorageClassName != nil {
		t.Errorf("claim %q names StorageClass %q; want the cluster's default", claim.Name, *claim.Spec.StorageClassName)
	}
	// The image's user is not root and a new volume is root's: the volume's
	// group must be one the user is in.
	if sc := pod.SecurityContext; sc == nil || sc.FSGroup == nil {
		t.Error("the pod sets no fsGroup, so the non-root user cannot write to a new volume")
	}

	// Attempts in flight get --shutdown-grace-period at SIGTERM; the kubelet
	// must not kill the process before.
	grace := time.Duration(ptr.Deref(pod.TerminationGracePeriodSeconds, 30)) * time.Second
	if grace <= opts.ShutdownGracePeriod {
		t.Errorf("terminationGracePeriodSeconds %s must exceed --shutdown-grace-period %s", grace, opts.ShutdownGracePeriod)
	}

	// A StatefulSet needs its governing Service to exist, and headless.
	var governing *corev1.Service
	for _, svc := range ofKind[corev1.Service](t, schema.GroupKind{Kind: "Service"}) {
		if svc.Name == sts.Spec.ServiceName && svc.Namespace == sts.Namespace {
			governing = svc
		}
	}
	switch {
	case governing == nil:
		t.Errorf("StatefulSet serviceName %q names no Service of the manifests", sts.Spec.ServiceName)
	case governing.Spec.ClusterIP != corev1.ClusterIPNone:
		t.Errorf("Service %s (the StatefulSet's serviceName) is not headless: clusterIP %q", governing.Name, governing.Spec.ClusterIP)
	}
}

// TestServices checks that every Service selects kubehook's Pods on ports
// the container has, and that registries find the event sources at
// kubehook-events.kubehook-system:8090.
func TestServices(t *testing.T) {
	sts := theStatefulSet(t)
	c, opts := manager(t, sts)
	podLabels := labels.Set(sts.Spec.Template.Labels)

	var events *corev1.Service
	for _, svc := range ofKind[corev1.Service](t, schema.GroupKind{Kind: "Service"}) {
		if svc.Name == eventsService && svc.Namespace == namespace {
			events = svc
		}
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selector %v does not select the StatefulSet's Pods (labels %v)", svc.Name, svc.Spec.Selector, podLabels)
		}
		for _, p := range svc.Spec.Ports {
			if _, ok := containerPort(c, p); !ok {
				t.Errorf("Service %s port %d: targetPort %q is no port of container %s", svc.Name, p.Port, p.TargetPort.String(), c.Name)
			}
		}
	}
	if events == nil {
		t.Fatalf("no Service %s in %s: registries are told to notify %s.%s:%d", eventsService, namespace, eventsService, namespace, eventsPort)
	}
	var port *corev1.ServicePort
	for i := range events.Spec.Ports {
		if events.Spec.Ports[i].Port == eventsPort {
			port = &events.Spec.Ports[i]
		}
	}
	if port == nil {
		t.Fatalf("Service %s exposes no port %d", eventsService, eventsPort)
	}
	// The port must reach the sources server, where --events-bind-address listens.
	_, listen, err := net.SplitHostPort(opts.EventsAddr)
	if err != nil {
		t.Fatalf("--events-bind-address %q: %v", opts.EventsAddr, err)
	}
	if got, ok := containerPort(c, *port); !ok || strconv.Itoa(int(got)) != listen {
		t.Errorf("Service %s port %d goes to container port %d; the sources server listens on %s", eventsService, eventsPort, got, listen)
	}
}

// containerPort resolves a Service port's targetPort to a port of c.
func containerPort(c *corev1.Container, p corev1.ServicePort) (int32, bool) {
	target := p.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(p.Port)
	}
	for _, cp := range c.Ports {
		if (target.Type == intstr.String && cp.Name == target.StrVal) ||
			(target.Type == intstr.Int && cp.ContainerPort == target.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}
