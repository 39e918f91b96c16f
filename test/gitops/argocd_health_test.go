// Package gitops checks the GitOps integrations shipped in gitops/: the
// Argo CD health check of WebhookSubscription, run with the Lua interpreter
// Argo CD embeds, against sample objects that are real WebhookSubscriptions.
package gitops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// healthDir is laid out as Argo CD's resource_customizations/<group>/<kind>.
var healthDir = filepath.Join("..", "..", "gitops", "argocd", "kubehook.io", "WebhookSubscription")

// healthStatuses are the statuses Argo CD accepts from a health script; it
// turns any other into Unknown.
var healthStatuses = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

// healthTests is Argo CD's health_test.yaml format.
type healthTests struct {
	Tests []healthTest `json:"tests"`
}

type healthTest struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// TestArgoCDHealth runs health.lua on the input of every case in
// health_test.yaml and expects the case's status and message, and checks that
// the cases use every sample and cover each state kubehook writes.
func TestArgoCDHealth(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(healthDir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	tests := readHealthTests(t)
	if len(tests) == 0 {
		t.Fatal("health_test.yaml has no tests")
	}

	used := map[string]bool{}
	for _, tc := range tests {
		used[filepath.Clean(tc.InputPath)] = true
		t.Run(tc.InputPath, func(t *testing.T) {
			if !slices.Contains(healthStatuses, tc.HealthStatus.Status) {
				t.Fatalf("health_test.yaml expects status %q, which Argo CD does not know", tc.HealthStatus.Status)
			}
			obj := readObject(t, tc.InputPath)
			got, err := runHealth(string(script), obj)
			if err != nil {
				t.Fatalf("health.lua: %v", err)
			}
			if got != tc.HealthStatus {
				t.Errorf("health.lua returned\n  %+v\nwant\n  %+v", got, tc.HealthStatus)
			}
		})
	}

	for _, path := range samplePaths(t) {
		if !used[path] {
			t.Errorf("%s is not the input of any test in health_test.yaml", path)
		}
	}

	// The states kubehook's controller writes, each of which needs a case:
	// a change there must come with a sample here.
	states := []struct {
		name string
		is   func(*kubehookv1.WebhookSubscription) bool
	}{
		{"no status yet", func(s *kubehookv1.WebhookSubscription) bool {
			return s.Status.ObservedGeneration == 0 && len(s.Status.Conditions) == 0
		}},
		{"Ready=True", func(s *kubehookv1.WebhookSubscription) bool { return conditionIs(s, kubehookv1.ReadyCondition, "True") }},
		{"Reconciling=True", func(s *kubehookv1.WebhookSubscription) bool {
			return conditionIs(s, kubehookv1.ReconcilingCondition, "True")
		}},
		{"Stalled=True", func(s *kubehookv1.WebhookSubscription) bool {
			return conditionIs(s, kubehookv1.StalledCondition, "True")
		}},
		{"inactive", func(s *kubehookv1.WebhookSubscription) bool { return s.Status.Inactive }},
		{"suspended", func(s *kubehookv1.WebhookSubscription) bool {
			return s.Spec.Suspend && s.Status.ObservedGeneration == s.Generation
		}},
		{"spec newer than status", func(s *kubehookv1.WebhookSubscription) bool {
			return s.Status.ObservedGeneration != 0 && s.Status.ObservedGeneration != s.Generation
		}},
	}
	for _, state := range states {
		found := false
		for _, tc := range tests {
			if sub := decodeSubscription(t, tc.InputPath); state.is(sub) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no test in health_test.yaml has a subscription in state %q", state.name)
		}
	}
}

// TestArgoCDHealthSamplesAreSubscriptions decodes every sample strictly
// (unknown or duplicate fields fail, as with kubectl --validate=strict) into
// the API types, so the samples stay objects kubehook can actually have.
func TestArgoCDHealthSamplesAreSubscriptions(t *testing.T) {
	paths := samplePaths(t)
	if len(paths) == 0 {
		t.Fatal("no samples in testdata")
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			sub := decodeSubscription(t, path)
			if sub.Name == "" || sub.Namespace == "" || sub.UID == "" || sub.Generation < 1 {
				t.Errorf("metadata needs the name, namespace, uid and generation the API server sets: %+v", sub.ObjectMeta)
			}
			if err := kubehookv1.ValidateSpec(&sub.Spec); err != nil {
				t.Errorf("invalid spec: %v", err)
			}
		})
	}
}

// TestArgoCDHealthDefensive covers states kubehook does not write today
// but an older or newer kubehook might, derived from healthy.yaml: the
// script must not call them Healthy.
func TestArgoCDHealthDefensive(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(healthDir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	base := readObject(t, filepath.Join("testdata", "healthy.yaml"))
	ready := func(obj map[string]any) map[string]any {
		return obj["status"].(map[string]any)["conditions"].([]any)[0].(map[string]any)
	}
	for _, tc := range []struct {
		name   string
		change func(obj map[string]any)
		want   healthStatus
	}{
		{"Ready Unknown for this generation", func(obj map[string]any) {
			ready(obj)["status"] = "Unknown"
			ready(obj)["message"] = "checking"
		}, healthStatus{"Progressing", "checking"}},
		{"Ready False without Stalled", func(obj map[string]any) {
			ready(obj)["status"] = "False"
			ready(obj)["reason"] = "SomethingNew"
		}, healthStatus{"Degraded", "delivering TAG_PULL events for maria-testorg/lab-words"}},
		{"no Ready condition", func(obj map[string]any) {
			obj["status"].(map[string]any)["conditions"] = []any{}
		}, healthStatus{"Progressing", "waiting for kubehook to set the Ready condition"}},
		{"Ready of an earlier generation", func(obj map[string]any) {
			ready(obj)["observedGeneration"] = int64(1)
		}, healthStatus{"Progressing", "waiting for kubehook to set the Ready condition"}},
		{"no metadata.generation", func(obj map[string]any) {
			delete(obj["metadata"].(map[string]any), "generation")
			delete(obj, "status")
		}, healthStatus{"Progressing", "waiting for kubehook to set the Ready condition"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := runtime.DeepCopyJSON(base)
			tc.change(obj)
			got, err := runHealth(string(script), obj)
			if err != nil {
				t.Fatalf("health.lua: %v", err)
			}
			if got != tc.want {
				t.Errorf("health.lua returned\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
}

// TestArgoCDHealthScriptErrors makes sure a broken script fails runHealth
// rather than passing for a result, so TestArgoCDHealth can fail at all.
func TestArgoCDHealthScriptErrors(t *testing.T) {
	obj := readObject(t, filepath.Join("testdata", "healthy.yaml"))
	for name, script := range map[string]string{
		"syntax error":     "return {status = ",
		"no table":         `return "Healthy"`,
		"unknown status":   `return {status = "Fine", message = ""}`,
		"string library":   `return {status = string.upper("healthy"), message = ""}`,
		"nil field access": `return {status = obj.status.nothing.here, message = ""}`,
		"endless loop":     `while true do end`,
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := runHealth(script, obj); err == nil {
				t.Errorf("runHealth succeeded with %+v", got)
			}
		})
	}
}

// runHealth evaluates a health script as Argo CD does for one from argocd-cm:
// a fresh interpreter with only the base, table and package libraries (no
// resource.customizations.useOpenLibs), the object as the Lua table obj, a
// one-second limit, and the returned table read as {status, message}.
func runHealth(script string, obj map[string]any) (healthStatus, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, fmt.Errorf("opening library %q: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return healthStatus{}, err
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("returned %s, not a table", L.Get(-1).Type())
	}
	var hs healthStatus
	for key, dst := range map[string]*string{"status": &hs.Status, "message": &hs.Message} {
		switch v := table.RawGetString(key).(type) {
		case lua.LString:
			*dst = string(v)
		case *lua.LNilType:
		default:
			return healthStatus{}, fmt.Errorf("returned %s %s, not a string", key, v.Type())
		}
	}
	if !slices.Contains(healthStatuses, hs.Status) {
		return healthStatus{}, fmt.Errorf("returned status %q, which Argo CD shows as Unknown", hs.Status)
	}
	return hs, nil
}

// toLua converts a decoded JSON value to Lua the way Argo CD hands objects to
// scripts: objects and arrays become tables (arrays indexed from 1), numbers
// LNumber, and null nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}

func readHealthTests(t *testing.T) []healthTest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(healthDir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	jsonData, err := utilyaml.ToJSON(data)
	if err != nil {
		t.Fatalf("health_test.yaml: %v", err)
	}
	var tests healthTests
	if err := strictJSON(jsonData, &tests); err != nil {
		t.Fatalf("health_test.yaml: %v", err)
	}
	return tests.Tests
}

// readObject returns a sample as Argo CD sees a live object: unstructured,
// with integers as int64.
func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(healthDir, path))
	if err != nil {
		t.Fatal(err)
	}
	jsonData, err := utilyaml.ToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(jsonData); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u.Object
}

// decodeSubscription decodes a sample with the API machinery's strict YAML
// decoder into the registered v1alpha1 type.
func decodeSubscription(t *testing.T, path string) *kubehookv1.WebhookSubscription {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(healthDir, path))
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := kubehookv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	serializer := k8sjson.NewSerializerWithOptions(k8sjson.DefaultMetaFactory, scheme, scheme,
		k8sjson.SerializerOptions{Yaml: true, Strict: true})
	obj, _, err := serializer.Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("%s is not a valid WebhookSubscription: %v", path, err)
	}
	sub, ok := obj.(*kubehookv1.WebhookSubscription)
	if !ok {
		t.Fatalf("%s decodes to %T, not a WebhookSubscription", path, obj)
	}
	return sub
}

// samplePaths lists testdata/*.yaml relative to healthDir, as inputPath
// names them.
func samplePaths(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(healthDir, "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 0, len(matches))
	for _, m := range matches {
		rel, err := filepath.Rel(healthDir, m)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, rel)
	}
	return paths
}

func conditionIs(s *kubehookv1.WebhookSubscription, conditionType, status string) bool {
	for _, c := range s.Status.Conditions {
		if c.Type == conditionType {
			return string(c.Status) == status
		}
	}
	return false
}

// strictJSON decodes data into v, failing on fields v does not have, so a
// misspelt key in health_test.yaml is not silently an empty expectation.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
