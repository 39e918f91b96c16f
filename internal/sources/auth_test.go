package sources

import (
	"context"
	"os"
	"path/filepath"
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
		if parseTokens([]byte("the-one-token")).match(tok) != (tok == "the-one-token") {
			t.Fatalf("token %q matched wrongly", tok)
		}
	})
}

func TestTokenSetMatchesWholeTokensOnly(t *testing.T) {
	set := parseTokens([]byte("# rotation: old and new\n\n  old-token-0123456789  \nnew-token-9876543210\n"))
	if len(set) != 2 {
		t.Fatalf("parsed %d tokens, want 2 (comments and blank lines skipped)", len(set))
	}
	for _, ok := range []string{"old-token-0123456789", "new-token-9876543210"} {
		if !set.match(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "old-token", "old-token-0123456789x", "new-token-987654321", "# rotation: old and new", "OLD-TOKEN-0123456789"} {
		if set.match(bad) {
			t.Errorf("%q accepted", bad)
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
