package subscriptions

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

func sub(name string, t kubehookv1.EventType, key string) *Subscription {
	return &Subscription{ID: types.NamespacedName{Namespace: "ns", Name: name}, UID: types.UID("uid-" + name), Type: t, Key: key}
}

func names(subs []*Subscription) []string {
	out := make([]string, 0, len(subs))
	for _, s := range subs {
		out = append(out, s.ID.Name)
	}
	slices.Sort(out)
	return out
}

func TestMatchScopes(t *testing.T) {
	r := New()
	for _, s := range []*Subscription{
		sub("exact", kubehookv1.TagPush, "acme/app"),
		sub("nested-exact", kubehookv1.TagPush, "acme/team/app"),
		sub("namespace", kubehookv1.TagPush, "acme"),
		sub("global", kubehookv1.TagPush, ""),
		sub("other-repo", kubehookv1.TagPush, "acme/other"),
		sub("other-ns", kubehookv1.TagPush, "globex"),
		sub("prefix-not-namespace", kubehookv1.TagPush, "acme/team"),
		sub("other-type", kubehookv1.TagPull, "acme/app"),
		sub("repo-event", kubehookv1.RepoEvent, "acme"),
		sub("repo-deleted", kubehookv1.RepoDeleted, "acme"),
		sub("scanner", kubehookv1.ScannerUpdateCompleted, ""),
	} {
		r.Upsert(s)
	}

	tests := []struct {
		name  string
		typ   kubehookv1.EventType
		repo  string
		wants []string
	}{
		{"repository, namespace and global keys", kubehookv1.TagPush, "acme/app", []string{"exact", "global", "namespace"}},
		{"nested repository matches its full path and its first component", kubehookv1.TagPush, "acme/team/app", []string{"global", "namespace", "nested-exact"}},
		{"unknown repository in a known namespace", kubehookv1.TagPush, "acme/new", []string{"global", "namespace"}},
		{"other namespace", kubehookv1.TagPush, "initech/app", []string{"global"}},
		{"event type is part of the key", kubehookv1.TagPull, "acme/app", []string{"other-type"}},
		{"REPO_DELETED also reaches REPO_EVENT", kubehookv1.RepoDeleted, "acme/app", []string{"repo-deleted", "repo-event"}},
		{"REPO_CREATED reaches REPO_EVENT only", kubehookv1.RepoCreated, "acme/app", []string{"repo-event"}},
		{"global event", kubehookv1.ScannerUpdateCompleted, "", []string{"scanner"}},
		{"a namespace-level repo path", kubehookv1.TagPush, "globex", []string{"global", "other-ns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(r.Match(tt.typ, tt.repo))
			if !slices.Equal(got, tt.wants) {
				t.Fatalf("Match(%s, %q) = %v, want %v", tt.typ, tt.repo, got, tt.wants)
			}
		})
	}
}

// Suspended and stalled subscriptions still take new events (they are held
// for them); inactive and not-permitted ones take none.
func TestHeldSubscriptionsMatchGivenUpOnesDoNot(t *testing.T) {
	r := New()
	s := sub("suspended", kubehookv1.TagPush, "acme")
	s.Suspended = true
	st := sub("stalled", kubehookv1.TagPush, "acme")
	st.Stalled = "SecretNotFound: Secret \"k\" not found"
	i := sub("inactive", kubehookv1.TagPush, "acme")
	i.Inactive = true
	np := sub("not-permitted", kubehookv1.TagPush, "acme")
	np.NotPermitted = true
	for _, e := range []*Subscription{s, st, i, np} {
		r.Upsert(e)
	}

	if r.Len() != 4 {
		t.Fatalf("Len = %d, want 4", r.Len())
	}
	got := names(r.Match(kubehookv1.TagPush, "acme/app"))
	slices.Sort(got)
	if !slices.Equal(got, []string{"stalled", "suspended"}) {
		t.Fatalf("Match = %v, want the held ones only", got)
	}
	for _, tt := range []struct {
		sub  *Subscription
		fate Fate
	}{{s, Hold}, {st, Hold}, {i, DeadLetter}, {np, DeadLetter}, {sub("ok", kubehookv1.TagPush, "acme"), Deliver}} {
		if f, why := tt.sub.Fate(); f != tt.fate || (f != Deliver && why == "") {
			t.Errorf("%s: Fate = %v %q, want %v with a reason", tt.sub.ID.Name, f, why, tt.fate)
		}
	}
	reactivated := sub("inactive", kubehookv1.TagPush, "acme")
	r.Upsert(reactivated)
	if got, ok := r.GetByUID(reactivated.UID); !ok || got != reactivated {
		t.Fatalf("GetByUID after replace = %v, %v", got, ok)
	}
	if got := names(r.Match(kubehookv1.TagPush, "acme/app")); len(got) != 3 {
		t.Fatalf("after reactivation Match = %v, want 3", got)
	}
}

// OnChange hears of every change, so held deliveries resume when their
// subscription does.
func TestOnChangeReportsEveryChange(t *testing.T) {
	r := New()
	var seen []string
	r.OnChange(func(id types.NamespacedName) { seen = append(seen, id.Name) })
	a := sub("a", kubehookv1.TagPush, "acme")
	r.Upsert(a)
	r.Deactivate(a.ID, a.UID)
	r.Remove(a.ID)
	r.Remove(a.ID) // nothing to remove: no change
	if !slices.Equal(seen, []string{"a", "a", "a"}) {
		t.Fatalf("changes seen = %v, want three", seen)
	}
	if _, ok := r.GetByUID(a.UID); ok {
		t.Fatal("removed entry still found by UID")
	}
}

func TestUpsertReplacesAndRemoveDrops(t *testing.T) {
	r := New()
	r.Upsert(sub("a", kubehookv1.TagPush, "acme/app"))
	r.Upsert(sub("a", kubehookv1.TagPush, "globex/app")) // key changed

	if got := r.Match(kubehookv1.TagPush, "acme/app"); len(got) != 0 {
		t.Fatalf("old key still matches: %v", names(got))
	}
	if got := names(r.Match(kubehookv1.TagPush, "globex/app")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("new key Match = %v", got)
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d after replace, want 1", r.Len())
	}
	if !r.Remove(types.NamespacedName{Namespace: "ns", Name: "a"}) {
		t.Fatal("Remove reported no entry")
	}
	if r.Remove(types.NamespacedName{Namespace: "ns", Name: "a"}) {
		t.Fatal("second Remove reported an entry")
	}
	if got := r.Match(kubehookv1.TagPush, "globex/app"); len(got) != 0 || r.Len() != 0 || r.byKey.count != 0 {
		t.Fatalf("entry left behind: match=%v len=%d index=%d", names(got), r.Len(), r.byKey.count)
	}
}

func TestSplitRepository(t *testing.T) {
	for _, tt := range []struct{ in, ns, repo string }{
		{"a/b/c", "a", "b/c"},
		{"a/b", "a", "b"},
		{"a", "a", ""},
		{"", "", ""},
	} {
		ns, repo := SplitRepository(tt.in)
		if ns != tt.ns || repo != tt.repo {
			t.Errorf("SplitRepository(%q) = %q, %q; want %q, %q", tt.in, ns, repo, tt.ns, tt.repo)
		}
	}
}

func TestDeactivateCopiesTheCurrentEntry(t *testing.T) {
	r := New()
	old := sub("a", kubehookv1.TagPush, "acme")
	old.UID = "u1"
	r.Upsert(old)
	updated := sub("a", kubehookv1.TagPush, "acme")
	updated.UID, updated.Endpoint = "u1", "https://new.example.com"
	r.Upsert(updated)

	if !r.Deactivate(old.ID, "u1") {
		t.Fatal("Deactivate refused the current object")
	}
	got, _ := r.Get(old.ID)
	if !got.Inactive || got.Endpoint != "https://new.example.com" {
		t.Fatalf("entry after Deactivate = %+v, want the updated entry, inactive", got)
	}
	if len(r.Match(kubehookv1.TagPush, "acme/app")) != 0 {
		t.Fatal("inactive entry still matches")
	}
	if r.Deactivate(old.ID, "u1") || r.Deactivate(old.ID, "other-uid") {
		t.Fatal("Deactivate acted twice or on another object")
	}
}
