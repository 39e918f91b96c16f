package sources

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		header string
		raw    bool
		want   string
		ok     bool
	}{
		{"Bearer abc123", false, "abc123", true},
		{"bearer abc123", false, "abc123", true},
		{"BEARER   abc123  ", false, "abc123", true},
		{"Bearer\tabc123", false, "abc123", true},
		{"Bearer", false, "", false},
		{"Bearer ", false, "", false},
		{"Bearer a b", false, "", false},
		{"Bearerabc", false, "", false},
		{"Basic dXNlcjpwYXNz", false, "", false},
		{"abc123", false, "", false},
		{"", false, "", false},
		// Harbor sends its configured header value as it is.
		{"abc123", true, "abc123", true},
		{"Basic dXNlcjpwYXNz", true, "Basic dXNlcjpwYXNz", true},
		{"Bearer abc123", true, "abc123", true},
		{"", true, "", false},
		{"   ", true, "", false},
	}
	for _, tt := range tests {
		got, ok := parseAuthorization(tt.header, tt.raw)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseAuthorization(%q, raw=%v) = %q, %v; want %q, %v", tt.header, tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer  x", "Basic dXNlcjpwYXNz", "Bearer", "Bearer\t\tq", "", " ", "Bearer a b", "tok\r\nen"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, header string, raw bool) {
		tok, ok := parseAuthorization(header, raw)
		if !ok {
			if tok != "" {
				t.Fatalf("refused header %q yields token %q", header, tok)
			}
			return
		}
		if tok == "" || tok != strings.TrimSpace(tok) || strings.ContainsAny(tok, "\r\n") {
			t.Fatalf("header %q yields unusable token %q", header, tok)
		}
		if !raw && strings.ContainsAny(tok, " \t") {
			t.Fatalf("bearer header %q yields token with whitespace %q", header, tok)
		}
		// A token taken from a Bearer header reads back the same.
		if !raw && utf8.ValidString(tok) {
			if again, ok := parseAuthorization("Bearer "+tok, false); !ok || again != tok {
				t.Fatalf("Bearer %q reads back as %q, %v", tok, again, ok)
			}
		}
		// Matching never accepts what was not configured.
		set, _ := parseTokens(SourceEvents, []byte("the-one-token"))
		if _, ok := set.match(tok); ok != (tok == "the-one-token") {
			t.Fatalf("token %q matched wrongly", tok)
		}
	})
}

func TestTokenSetMatchesWholeTokensOnly(t *testing.T) {
	for _, source := range SourceNames {
		set, errs := parseTokens(source, []byte("# rotation: old and new\n\n  old-token-0123456789  \nnew-token-9876543210\n"))
		if len(set) != 2 || len(errs) != 0 {
			t.Fatalf("%s: parsed %d tokens (%v), want 2 (comments and blank lines skipped)", source, len(set), errs)
		}
		for _, ok := range []string{"old-token-0123456789", "new-token-9876543210"} {
			if e, found := set.match(ok); !found || e.grant.Scoped {
				t.Errorf("%s: %q refused or scoped", source, ok)
			}
		}
		for _, bad := range []string{"", "old-token", "old-token-0123456789x", "new-token-987654321", "# rotation: old and new", "OLD-TOKEN-0123456789"} {
			if _, found := set.match(bad); found {
				t.Errorf("%s: %q accepted", source, bad)
			}
		}
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// writeAtomically replaces path as the kubelet updates a Secret volume.
func writeAtomically(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFileRotationTakesEffectWithoutRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeAtomically(t, path, "first-token-aaaaaaaa\n")
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	a := NewAuthenticator(AuthOptions{
		TokenFiles:        map[string]string{SourceDistribution: path},
		FileCheckInterval: 2 * time.Second,
		Now:               clock.Now,
	})
	if !a.Authenticate(SourceDistribution, "Bearer first-token-aaaaaaaa") {
		t.Fatal("the configured token is refused")
	}

	// Rotation: both tokens for a while, then only the new one.
	writeAtomically(t, path, "first-token-aaaaaaaa\nsecond-token-bbbbbbb\n")
	clock.Add(3 * time.Second)
	if !a.Authenticate(SourceDistribution, "Bearer second-token-bbbbbbb") {
		t.Fatal("the added token is refused after the check interval")
	}
	writeAtomically(t, path, "second-token-bbbbbbb\n")
	// Within the interval the file is not read again.
	if !a.Authenticate(SourceDistribution, "Bearer first-token-aaaaaaaa") {
		t.Fatal("the file was re-read within the check interval")
	}
	clock.Add(3 * time.Second)
	if a.Authenticate(SourceDistribution, "Bearer first-token-aaaaaaaa") {
		t.Fatal("the removed token is still accepted after the check interval")
	}
	if !a.Authenticate(SourceDistribution, "Bearer second-token-bbbbbbb") {
		t.Fatal("the new token is refused")
	}

	// A file that disappears accepts nothing.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Add(3 * time.Second)
	if a.Authenticate(SourceDistribution, "Bearer second-token-bbbbbbb") || a.Enabled(SourceDistribution) {
		t.Fatal("a missing token file still accepts its old token")
	}
}

func TestTokensAreScopedToTheirSource(t *testing.T) {
	dir := t.TempDir()
	dist, harbor := filepath.Join(dir, "dist"), filepath.Join(dir, "harbor")
	writeAtomically(t, dist, "dist-token-11111111\n")
	writeAtomically(t, harbor, "harbor-token-2222222\n")
	a := NewAuthenticator(AuthOptions{TokenFiles: map[string]string{SourceDistribution: dist, SourceHarbor: harbor}})

	if a.Authenticate(SourceHarbor, "Bearer dist-token-11111111") || a.Authenticate(SourceDistribution, "Bearer harbor-token-2222222") {
		t.Fatal("a token of one source is accepted by another")
	}
	if !a.Authenticate(SourceHarbor, "harbor-token-2222222") {
		t.Fatal("harbor refuses its token sent without the Bearer scheme")
	}
	if a.Authenticate(SourceDistribution, "dist-token-11111111") {
		t.Fatal("distribution accepts a token without the Bearer scheme")
	}
	if a.Enabled(SourceEvents) || a.Authenticate(SourceEvents, "Bearer ") || a.Authenticate(SourceEvents, "Bearer dist-token-11111111") {
		t.Fatal("a source without tokens accepts a request")
	}
}

func TestTokensFromSecretAreRefreshed(t *testing.T) {
	key := types.NamespacedName{Namespace: "kubehook-system", Name: "source-tokens"}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Data: map[string][]byte{
			SourceDistribution: []byte("dist-from-secret-1\n"),
			SourceEvents:       []byte("events-from-secret-1"),
		},
	}
	c := fake.NewClientBuilder().WithObjects(secret).Build()
	a := NewAuthenticator(AuthOptions{Secret: key, Reader: c})
	ctx := context.Background()

	if a.Authenticate(SourceDistribution, "Bearer dist-from-secret-1") {
		t.Fatal("tokens accepted before the Secret was read")
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.Authenticate(SourceDistribution, "Bearer dist-from-secret-1") || !a.Authenticate(SourceEvents, "Bearer events-from-secret-1") {
		t.Fatal("a token from the Secret is refused")
	}
	if a.Enabled(SourceHarbor) {
		t.Fatal("harbor has no key in the Secret but is enabled")
	}

	secret.Data[SourceDistribution] = []byte("dist-from-secret-2\n")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Authenticate(SourceDistribution, "Bearer dist-from-secret-1") || !a.Authenticate(SourceDistribution, "Bearer dist-from-secret-2") {
		t.Fatal("the Secret's rotation did not take effect")
	}

	if err := c.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := a.Refresh(ctx); err == nil {
		t.Fatal("a missing Secret is not reported")
	}
	if a.Authenticate(SourceDistribution, "Bearer dist-from-secret-2") {
		t.Fatal("a deleted Secret's token is still accepted")
	}
}

// lineSecret is the token of the line-format tests; no error may show it.
const lineSecret = "Line-Secret-Token-4f3e2d1c"

func TestParseTokensScopedLines(t *testing.T) {
	tests := []struct {
		line string
		want []string // nil: registry-wide
		err  string   // part of the error; the line is refused
	}{
		{lineSecret, nil, ""},
		{lineSecret + " namespaces=team-a", []string{"team-a"}, ""},
		{"  " + lineSecret + "\tnamespaces=team-b,team-a,team-b  ", []string{"team-a", "team-b"}, ""},
		{lineSecret + " namespaces=a.b_c__d-e", []string{"a.b_c__d-e"}, ""},
		{lineSecret + " namespaces=", nil, "namespaces= is empty"},
		{lineSecret + " namespaces=team-a,,team-b", nil, "empty entry"},
		{lineSecret + " namespaces=team-a,", nil, "empty entry"},
		{lineSecret + " namespaces=team-a, team-b", nil, "field 3 is not namespaces="},
		{lineSecret + " namespaces=*", nil, "namespaces=* is not accepted"},
		{lineSecret + " namespaces=Team-A", nil, `"Team-A" is not a registry namespace`},
		{lineSecret + " namespaces=team-a/web", nil, `"team-a/web" is not a registry namespace`},
		{lineSecret + " namespace=team-a", nil, "unknown option namespace="},
		{lineSecret + " namespaces=team-a namespaces=team-b", nil, "given twice"},
		{lineSecret + " " + lineSecret + "2", nil, "put one token per line"},
		{lineSecret + " namespaces=team-a # team a", nil, "field 3 is not namespaces="},
		{"namespaces=team-a " + lineSecret, nil, "write the token first"},
	}
	for _, tt := range tests {
		set, errs := parseTokens(SourceEvents, []byte("# comment\n\n"+tt.line+"\n"))
		e, found := set.match(lineSecret)
		if tt.err == "" {
			if len(errs) != 0 || !found || e.refused {
				t.Errorf("%q: refused: %v", tt.line, errs)
				continue
			}
			if e.grant.Scoped != (tt.want != nil) || !slices.Equal(e.grant.Namespaces, tt.want) {
				t.Errorf("%q: grant %+v, want namespaces %v", tt.line, e.grant, tt.want)
			}
			continue
		}
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "line 3: ") || !strings.Contains(errs[0].Error(), tt.err) {
			t.Errorf("%q: errors %v, want one for line 3 saying %q", tt.line, errs, tt.err)
			continue
		}
		if strings.Contains(errs[0].Error(), "Line-Secret") {
			t.Errorf("%q: the error shows the token: %v", tt.line, errs[0])
		}
		if found && !e.refused {
			t.Errorf("%q: the token of a refused line is accepted with %+v", tt.line, e.grant)
		}
	}
}

func TestScopedLinesAreForTheEventsSourceOnly(t *testing.T) {
	for _, source := range []string{SourceDistribution, SourceHarbor} {
		set, errs := parseTokens(source, []byte(lineSecret+" namespaces=team-a\nBasic dXNlcjpwYXNz\n"))
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "line 1: namespaces= limits only tokens of the events source") || strings.Contains(errs[0].Error(), lineSecret) {
			t.Fatalf("%s: errors %v, want one for line 1 without the token", source, errs)
		}
		for _, tok := range []string{lineSecret, lineSecret + " namespaces=team-a"} {
			if e, found := set.match(tok); found && !e.refused {
				t.Fatalf("%s: %q accepted from a refused line", source, tok)
			}
		}
		// Lines with spaces that carry no scope are still whole tokens.
		if e, found := set.match("Basic dXNlcjpwYXNz"); !found || e.refused || e.grant.Scoped {
			t.Fatalf("%s: a whole-line token is no longer accepted registry-wide", source)
		}
	}
}

func TestTokenListedTwiceMayPublishOnlyWhatEveryListingAllows(t *testing.T) {
	const tok = "twice-listed-token-0123456"
	tests := []struct {
		file    string
		refused bool
		want    []string // nil: registry-wide
	}{
		{tok + "\n" + tok + "\n", false, nil},
		{tok + " namespaces=a,b\n" + tok + " namespaces=b,c\n", false, []string{"b"}},
		{tok + "\n" + tok + " namespaces=a\n", false, []string{"a"}},
		{tok + " namespaces=a\n" + tok + "\n", false, []string{"a"}},
		{tok + " namespaces=a\n" + tok + " namespaces=b\n", false, []string{}},
		{tok + "\n" + tok + " namespace=a\n", true, nil},
	}
	for _, tt := range tests {
		set, _ := parseTokens(SourceEvents, []byte(tt.file))
		if len(set) != 1 {
			t.Fatalf("%q: %d entries, want the token once", tt.file, len(set))
		}
		e, found := set.match(tok)
		if !found || e.refused != tt.refused {
			t.Fatalf("%q: found %v, refused %v; want refused %v", tt.file, found, e.refused, tt.refused)
		}
		if !tt.refused && (e.grant.Scoped != (tt.want != nil) || !slices.Equal(e.grant.Namespaces, tt.want)) {
			t.Fatalf("%q: grant %+v, want %v", tt.file, e.grant, tt.want)
		}
	}

	// In the file and the Secret: the narrower wins; a refused line refuses.
	dir := t.TempDir()
	path := filepath.Join(dir, "events")
	writeAtomically(t, path, tok+"\n")
	key := types.NamespacedName{Namespace: "kubehook-system", Name: "source-tokens"}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Data: map[string][]byte{SourceEvents: []byte(tok + " namespaces=team-a\n")}}
	c := fake.NewClientBuilder().WithObjects(secret).Build()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	a := NewAuthenticator(AuthOptions{TokenFiles: map[string]string{SourceEvents: path}, Secret: key, Reader: c, Now: clock.Now})
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g, ok := a.Authorize(SourceEvents, "Bearer "+tok); !ok || !g.Scoped || !slices.Equal(g.Namespaces, []string{"team-a"}) {
		t.Fatalf("bare in the file, scoped in the Secret: %+v, %v; want team-a only", g, ok)
	}
	writeAtomically(t, path, tok+" namespaces=team-a,\n")
	clock.Add(5 * time.Second)
	if g, ok := a.Authorize(SourceEvents, "Bearer "+tok); ok {
		t.Fatalf("refused in the file, scoped in the Secret: accepted with %+v", g)
	}
}
