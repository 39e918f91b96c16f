package tenancy

import (
	"strings"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

func TestCheck(t *testing.T) {
	ann := func(v string) map[string]string {
		return map[string]string{kubehookv1.RegistryNamespacesAnnotation: v}
	}
	tests := []struct {
		name    string
		ns      string
		ann     map[string]string
		key     string
		wantErr string
	}{
		{name: "same-name namespace", ns: "acme", key: "acme"},
		{name: "same-name repository", ns: "acme", key: "acme/app"},
		{name: "same-name nested repository", ns: "acme", key: "acme/team/app"},
		{name: "other registry namespace by default", ns: "acme", key: "globex/app", wantErr: `may only use registry namespace "acme"`},
		{name: "prefix is not a match", ns: "acme", key: "acmecorp/app", wantErr: "may only use"},
		{name: "empty key needs the wildcard", ns: "acme", key: "", wantErr: `"*"`},
		{name: "annotation list", ns: "team-a", ann: ann("acme, globex"), key: "globex/app"},
		{name: "annotation replaces the same-name default", ns: "acme", ann: ann("globex"), key: "acme/app", wantErr: "not in the kubehook.io/registry-namespaces annotation"},
		{name: "wildcard allows any key", ns: "ops", ann: ann("*"), key: "initech/app"},
		{name: "wildcard allows the empty key", ns: "ops", ann: ann("acme,*"), key: ""},
		{name: "empty annotation allows nothing", ns: "acme", ann: ann(""), key: "acme", wantErr: "not in the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.ns, tt.ann, tt.key)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzCheck: a key is allowed only if its first component is listed, the
// annotation holds "*", or there is no annotation and it equals the namespace.
func FuzzCheck(f *testing.F) {
	f.Add("acme", "acme, globex ,*", true, "acme/app")
	f.Add("acme", "", false, "")
	f.Add("a", ",,", true, "a/b/c")
	f.Fuzz(func(t *testing.T, ns, annotation string, annotated bool, key string) {
		var ann map[string]string
		if annotated {
			ann = map[string]string{kubehookv1.RegistryNamespacesAnnotation: annotation}
		}
		err := Check(ns, ann, key)
		names, all := Allowed(ns, ann)
		if all && err != nil {
			t.Fatalf("wildcard refused %q: %v", key, err)
		}
		if err == nil && !all {
			first, _, _ := strings.Cut(key, "/")
			found := false
			for _, n := range names {
				found = found || n == first
			}
			if key == "" || !found {
				t.Fatalf("allowed %q in %q with annotation %q (%v)", key, ns, annotation, annotated)
			}
		}
	})
}
