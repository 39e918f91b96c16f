package manifests

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"encoding/json"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubehook/kubehook/internal/app"
	"github.com/kubehook/kubehook/internal/testenv"
)

// chartDir is the Helm chart, relative to the repository.
var chartDir = filepath.Join("charts", "kubehook")

// chartRelease renders the chart as `helm template` does for a release
// named kubehook in namespace: its objects are then named as
// config/default names them (the prefix kubehook-).
const chartRelease = "kubehook"

// variant is a set of chart values: a way a user installs it.
type variant struct {
	name string
	set  []string
}

// variants cover both modes and every optional part.
var variants = []variant{
	{"embedded (defaults)", nil},
	{"cluster", []string{"mode=cluster", "nats.url=nats://nats.nats:4222", "nats.credentials.secretName=nats-creds"}},
	{"everything optional", []string{
		"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true",
		"podDisruptionBudget.enabled=true", "networkPolicy.enabled=true",
		"sources.tokensSecret=kubehook-source-tokens", "sources.tls.secretName=events-tls",
		"dtrApi.tls.secretName=api-tls", "metrics.tls.secretName=metrics-tls",
		"registry.url=https://registry.example.com", "registry.credentialsSecret=registry-creds",
		"config.allowEndpointCIDRs={10.1.0.0/16}", "config.denyEndpointCIDRs={203.0.113.0/24}",
		"config.deliveryConcurrency=64", "config.breakerThreshold=-1", "config.perSubscriptionMetrics=true",
		"dtrApi.rateLimit=5", "embedded.syncInterval=30s",
	}},
	{"cluster, no DTR API, plain metrics, CRD not kept", []string{
		"mode=cluster", "nats.url=nats://nats.nats:4222", "replicaCount=5",
		"dtrApi.enabled=false", "metrics.secure=false", "crds.keep=false", "authorPolicy.enabled=false",
		"podDisruptionBudget.enabled=true", "networkPolicy.enabled=true",
	}},
}

// helm runs the helm CLI that `make tools` builds into bin/.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = filepath.Join(testenv.RepoRoot(), "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s: run `make tools` to build it, or set HELM", bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = testenv.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

func setArgs(v variant) []string {
	var args []string
	for _, s := range v.set {
		args = append(args, "--set", s)
	}
	return args
}

// renderChart renders the chart for a release in namespace.
func renderChart(t *testing.T, namespace string, v variant) []*unstructured.Unstructured {
	t.Helper()
	out := helm(t, append([]string{"template", chartRelease, chartDir, "--namespace", namespace}, setArgs(v)...)...)
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("%s: decoding helm template: %v", v.name, err)
	}
	return objs
}

// TestChartLints runs helm lint on every variant, strict (warnings fail).
func TestChartLints(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			helm(t, append([]string{"lint", "--strict", chartDir}, setArgs(v)...)...)
		})
	}
}

// TestChartServerDryRun applies every object of every variant with a
// server-side dry run: the API server validates and admits each one
// (restricted Pod Security included). The Prometheus Operator's kinds have
// no CRD here (their published definitions cannot be fetched from this
// machine); they are decoded strictly into the operator's own Go types
// instead.
func TestChartServerDryRun(t *testing.T) {
	const ns = "kubehook-chart"
	nsObj := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q,"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/enforce-version":"latest"}}}`, ns)
	if out, err := runKubectl([]byte(nsObj), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("creating namespace %s: %v\n%s", ns, err, out)
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var apply bytes.Buffer
			for _, u := range renderChart(t, ns, v) {
				if u.GroupVersionKind().Group == monitoringv1.SchemeGroupVersion.Group {
					decodeMonitoring(t, u)
					continue
				}
				js, err := u.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				apply.Write(js)
				apply.WriteString("\n")
			}
			if out, err := runKubectl(apply.Bytes(), "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-"); err != nil {
				t.Fatalf("server-side dry run: %v\n%s", err, out)
			}
		})
	}
}

// decodeMonitoring decodes a Prometheus Operator object strictly.
func decodeMonitoring(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	js, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var into any
	switch u.GetKind() {
	case monitoringv1.ServiceMonitorsKind:
		into = &monitoringv1.ServiceMonitor{}
	case monitoringv1.PrometheusRuleKind:
		into = &monitoringv1.PrometheusRule{}
	default:
		t.Fatalf("unexpected %s", u.GroupVersionKind())
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	if pr, ok := into.(*monitoringv1.PrometheusRule); ok && len(pr.Spec.Groups) == 0 {
		t.Fatalf("PrometheusRule %s holds no rule groups", pr.Name)
	}
}

// TestChartInstallDryRun runs `helm install --dry-run=server` against the
// control plane for both modes: the objects are validated by it, and the
// NOTES tell a registry where to send events. The control plane has the
// CRD already (envtest installs it, as a cluster whose CRDs are managed
// apart would), so the release leaves it out.
func TestChartInstallDryRun(t *testing.T) {
	for _, v := range variants[:2] {
		t.Run(v.name, func(t *testing.T) {
			out := string(helm(t, append([]string{"install", "kh", chartDir, "--dry-run=server", "--kubeconfig", kubeconfig,
				"--namespace", "kubehook-notes", "--create-namespace", "--set", "crds.install=false"}, setArgs(v)...)...))
			for _, want := range []string{
				"http://kh-kubehook-events.kubehook-notes.svc:8090/v1/sources/distribution",
				"/v1/sources/harbor", "/v1/events", "create token dtr-user",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("NOTES do not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestChartManifestsAreConfigs: the chart's copies of config/ (the CRD, the
// roles, the author policy) are the files `make manifests` copies.
func TestChartManifestsAreConfigs(t *testing.T) {
	root := testenv.RepoRoot()
	copies, err := filepath.Glob(filepath.Join(root, chartDir, "manifests", "*.yaml"))
	if err != nil || len(copies) == 0 {
		t.Fatalf("no copies in %s: %v", filepath.Join(chartDir, "manifests"), err)
	}
	for _, c := range copies {
		base := filepath.Base(c)
		var from string
		for _, dir := range []string{"config/crd/bases", "config/rbac", "config/policies"} {
			if _, err := os.Stat(filepath.Join(root, dir, base)); err == nil {
				from = filepath.Join(root, dir, base)
			}
		}
		if from == "" {
			t.Errorf("%s copies no file of config/", base)
			continue
		}
		a, _ := os.ReadFile(c)
		b, _ := os.ReadFile(from)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run `make manifests`", filepath.Join(chartDir, "manifests", base), from)
		}
	}
}

// TestChartMatchesKustomize renders the chart with its defaults and
// config/default, and checks what must agree: the CRD, every role's rules,
// kubehook's arguments (each a flag of kubehook; config's all in the
// chart), its ports, probes, security and resources, and the Services'
// ports.
func TestChartMatchesKustomize(t *testing.T) {
	chart := renderChart(t, namespace, variants[0])
	byName := func(objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
		out := map[string]*unstructured.Unstructured{}
		for _, u := range objs {
			if u.GetKind() == kind {
				out[u.GetName()] = u
			}
		}
		return out
	}

	// The CRD: the same schema and names.
	crdOf := func(objs []*unstructured.Unstructured) *apiextensionsv1.CustomResourceDefinition {
		for _, u := range byName(objs, "CustomResourceDefinition") {
			return convert[apiextensionsv1.CustomResourceDefinition](t, u)
		}
		t.Fatal("no CustomResourceDefinition")
		return nil
	}
	if a, b := crdOf(chart), crdOf(objects); !equality.Semantic.DeepEqual(a.Spec, b.Spec) {
		t.Errorf("the chart's CRD differs from config/crd's")
	}

	// Roles: the same names (release kubehook) and rules.
	for _, kind := range []string{"ClusterRole", "Role"} {
		theirs, ours := byName(objects, kind), byName(chart, kind)
		for name, k := range theirs {
			c, ok := ours[name]
			if !ok {
				t.Errorf("the chart has no %s %s", kind, name)
				continue
			}
			if a, b := convert[rbacv1.ClusterRole](t, c).Rules, convert[rbacv1.ClusterRole](t, k).Rules; !equality.Semantic.DeepEqual(a, b) {
				t.Errorf("%s %s: the chart's rules differ from config's:\nchart:  %+v\nconfig: %+v", kind, name, a, b)
			}
		}
	}

	// The manager container.
	var sts *appsv1.StatefulSet
	for _, u := range byName(chart, "StatefulSet") {
		sts = convert[appsv1.StatefulSet](t, u)
	}
	if sts == nil {
		t.Fatal("the chart's embedded mode has no StatefulSet")
	}
	chartC, _ := manager(t, sts)
	configSts := theStatefulSet(t)
	configC, _ := manager(t, configSts)
	for _, arg := range configC.Args {
		if !slices.Contains(chartC.Args, arg) {
			t.Errorf("config passes %s, the chart does not", arg)
		}
	}
	same := func(what string, a, b any) {
		if !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("%s: the chart's differs from config's:\nchart:  %+v\nconfig: %+v", what, a, b)
		}
	}
	same("container ports", chartC.Ports, configC.Ports)
	same("liveness probe", chartC.LivenessProbe, configC.LivenessProbe)
	same("readiness probe", chartC.ReadinessProbe, configC.ReadinessProbe)
	same("container security context", chartC.SecurityContext, configC.SecurityContext)
	same("resources", chartC.Resources, configC.Resources)
	same("volume mounts", chartC.VolumeMounts, configC.VolumeMounts)
	same("pod security context", sts.Spec.Template.Spec.SecurityContext, configSts.Spec.Template.Spec.SecurityContext)
	same("termination grace period", sts.Spec.Template.Spec.TerminationGracePeriodSeconds, configSts.Spec.Template.Spec.TerminationGracePeriodSeconds)
	same("volume claim templates", claimSpecs(sts), claimSpecs(configSts))

	// Services, by the port they serve.
	ports := func(objs []*unstructured.Unstructured) map[string]corev1.ServicePort {
		out := map[string]corev1.ServicePort{}
		for _, u := range byName(objs, "Service") {
			svc := convert[corev1.Service](t, u)
			for _, p := range svc.Spec.Ports {
				out[p.TargetPort.String()] = p
			}
		}
		return out
	}
	chartPorts, configPorts := ports(chart), ports(objects)
	for target, p := range configPorts {
		c, ok := chartPorts[target]
		if !ok {
			t.Errorf("no Service of the chart serves port %s", target)
			continue
		}
		same("Service port "+target, []any{c.Port, c.Protocol}, []any{p.Port, p.Protocol})
	}
}

func claimSpecs(sts *appsv1.StatefulSet) []corev1.PersistentVolumeClaimSpec {
	var out []corev1.PersistentVolumeClaimSpec
	for _, c := range sts.Spec.VolumeClaimTemplates {
		out = append(out, c.Spec)
	}
	return out
}

// TestChartArgsAreKubehookFlags parses every variant's arguments with
// kubehook's own flags: a flag the chart passes that kubehook does not
// have, or a bad value, fails here.
func TestChartArgsAreKubehookFlags(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for _, u := range renderChart(t, namespace, v) {
				var spec *corev1.PodSpec
				switch u.GetKind() {
				case "StatefulSet":
					spec = &convert[appsv1.StatefulSet](t, u).Spec.Template.Spec
				case "Deployment":
					spec = &convert[appsv1.Deployment](t, u).Spec.Template.Spec
				default:
					continue
				}
				for _, c := range spec.Containers {
					opts := &app.Options{}
					fs := flag.NewFlagSet("kubehook", flag.ContinueOnError)
					fs.SetOutput(io.Discard)
					opts.BindFlags(fs)
					if err := fs.Parse(c.Args); err != nil {
						t.Errorf("%s: args %q: %v", u.GetName(), c.Args, err)
					}
				}
			}
		})
	}
}

func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	obj := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		t.Fatalf("converting %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return obj
}
