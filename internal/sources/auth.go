package sources

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Source names: the path segment of each source's route, the key of its
// tokens in the tokens Secret, and the "source" label of the metrics.
const (
	SourceDistribution = "distribution"
	SourceHarbor       = "harbor"
	SourceEvents       = "events"
)

// SourceNames lists the sources.
var SourceNames = []string{SourceDistribution, SourceHarbor, SourceEvents}

// maxTokenFileSize bounds what is read from a token file or Secret key.
const maxTokenFileSize = 64 << 10

// tokenSet holds accepted tokens as SHA-256 sums, so every comparison has
// the same length whatever the token's.
type tokenSet [][sha256.Size]byte

// parseTokens reads one token per line. Surrounding whitespace, blank lines
// and lines starting with # are ignored.
func parseTokens(data []byte) tokenSet {
	var out tokenSet
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxTokenFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, sha256.Sum256([]byte(line)))
	}
	return out
}

// match reports whether given is one of the tokens. It compares the
// SHA-256 sums in constant time (crypto/subtle) and always compares every
// token, so neither the position of a match nor a common prefix shows in
// the timing.
func (s tokenSet) match(given string) bool {
	if given == "" {
		return false
	}
	sum := sha256.Sum256([]byte(given))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(sum[:], s[i][:])
	}
	return found == 1
}

// parseAuthorization extracts the credential from an Authorization header
// value: the token of "Bearer <token>" (scheme case-insensitive). With raw,
// a value without the Bearer scheme is taken whole, as Harbor sends the
// static header value it was configured with. It returns false when there
// is no usable credential.
func parseAuthorization(header string, raw bool) (string, bool) {
	h := strings.TrimSpace(header)
	if len(h) > len("bearer") && strings.EqualFold(h[:len("bearer")], "bearer") && (h[len("bearer")] == ' ' || h[len("bearer")] == '\t') {
		tok := strings.TrimSpace(h[len("bearer"):])
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
			return "", false
		}
		return tok, true
	}
	if raw && h != "" && !strings.ContainsAny(h, "\r\n") {
		return h, true
	}
	return "", false
}

// tokenFile is a file of tokens, re-read at most once per interval so a
// rotated Secret volume takes effect without a restart. A file that cannot
// be read accepts nothing.
type tokenFile struct {
	path     string
	interval time.Duration
	now      func() time.Time
	log      logr.Logger

	mu      sync.Mutex
	checked time.Time
	tokens  tokenSet
	sum     [sha256.Size]byte
	err     error
}

func (f *tokenFile) get() tokenSet {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if !f.checked.IsZero() && now.Sub(f.checked) < f.interval {
		return f.tokens
	}
	f.checked = now
	data, err := readBounded(f.path)
	if err != nil {
		if f.err == nil || f.err.Error() != err.Error() {
			f.log.Error(err, "reading token file; the source refuses every request until it can be read", "path", f.path)
		}
		f.err, f.tokens, f.sum = err, nil, [sha256.Size]byte{}
		return nil
	}
	sum := sha256.Sum256(data)
	if f.err != nil || sum != f.sum {
		f.tokens, f.sum = parseTokens(data), sum
		f.log.Info("token file loaded", "path", f.path, "tokens", len(f.tokens))
	}
	f.err = nil
	return f.tokens
}

func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxTokenFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTokenFileSize {
		return nil, fmt.Errorf("token file %s is larger than %d bytes", path, maxTokenFileSize)
	}
	return data, nil
}

// AuthOptions say where each source's tokens come from. A source may have
// a file, keys in the Secret, or both (either is accepted); a source with
// neither refuses every request.
type AuthOptions struct {
	// TokenFiles maps a source name to a file of tokens, one per line.
	TokenFiles map[string]string
	// Secret, when set, is a Secret whose keys "distribution", "harbor" and
	// "events" hold each source's tokens, one per line. It is read with
	// Reader when the server starts and every SecretRefreshInterval.
	Secret types.NamespacedName
	Reader client.Reader
	// FileCheckInterval is how often a token file is re-read (default 2s).
	FileCheckInterval time.Duration
	// SecretRefreshInterval is how often the Secret is re-read (default 30s).
	SecretRefreshInterval time.Duration
	// Now is the clock; tests inject it.
	Now func() time.Time
	Log logr.Logger
}

// Authenticator decides whether a request carries a valid token for its
// source.
type Authenticator struct {
	opts  AuthOptions
	files map[string]*tokenFile

	mu           sync.RWMutex
	secretTokens map[string]tokenSet
}

// NewAuthenticator returns an Authenticator for opts. Secret tokens are
// loaded by Refresh (the Server calls it at start and periodically).
func NewAuthenticator(opts AuthOptions) *Authenticator {
	if opts.FileCheckInterval <= 0 {
		opts.FileCheckInterval = 2 * time.Second
	}
	if opts.SecretRefreshInterval <= 0 {
		opts.SecretRefreshInterval = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{opts: opts, files: map[string]*tokenFile{}}
	for source, path := range opts.TokenFiles {
		if path == "" {
			continue
		}
		a.files[source] = &tokenFile{path: path, interval: opts.FileCheckInterval, now: opts.Now, log: opts.Log.WithValues("source", source)}
	}
	return a
}

// Authenticate reports whether the Authorization header value carries one
// of source's tokens. The harbor source also accepts the token without the
// Bearer scheme.
func (a *Authenticator) Authenticate(source, authorization string) bool {
	tok, ok := parseAuthorization(authorization, source == SourceHarbor)
	if !ok {
		return false
	}
	// Compare against both sets without short-circuiting.
	fromFile := a.fileTokens(source).match(tok)
	fromSecret := a.secretTokensFor(source).match(tok)
	return fromFile || fromSecret
}

// Enabled reports whether source has any token configured.
func (a *Authenticator) Enabled(source string) bool {
	return len(a.fileTokens(source)) > 0 || len(a.secretTokensFor(source)) > 0
}

func (a *Authenticator) fileTokens(source string) tokenSet {
	if f := a.files[source]; f != nil {
		return f.get()
	}
	return nil
}

func (a *Authenticator) secretTokensFor(source string) tokenSet {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.secretTokens[source]
}

// Refresh re-reads the tokens Secret, if one is configured. A Secret that
// no longer exists accepts nothing; on other errors the tokens last read
// stay in force.
func (a *Authenticator) Refresh(ctx context.Context) error {
	if a.opts.Secret.Name == "" {
		return nil
	}
	if a.opts.Reader == nil {
		return errors.New("sources: a tokens Secret is set but there is no API reader")
	}
	var secret corev1.Secret
	err := a.opts.Reader.Get(ctx, a.opts.Secret, &secret)
	switch {
	case apierrors.IsNotFound(err):
		a.setSecretTokens(nil)
		return fmt.Errorf("tokens Secret %s not found: its sources accept nothing", a.opts.Secret)
	case err != nil:
		return fmt.Errorf("reading tokens Secret %s: %w", a.opts.Secret, err)
	}
	tokens := map[string]tokenSet{}
	for _, source := range SourceNames {
		if data, ok := secret.Data[source]; ok && len(data) <= maxTokenFileSize {
			tokens[source] = parseTokens(data)
		}
	}
	a.setSecretTokens(tokens)
	return nil
}

func (a *Authenticator) setSecretTokens(tokens map[string]tokenSet) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.secretTokens = tokens
}

// run refreshes the Secret tokens until ctx ends, logging when a source
// becomes enabled or disabled.
func (a *Authenticator) run(ctx context.Context) {
	if a.opts.Secret.Name == "" {
		return
	}
	t := time.NewTicker(a.opts.SecretRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := a.enabledSet()
		if err := a.Refresh(ctx); err != nil && ctx.Err() == nil {
			a.opts.Log.Error(err, "refreshing source tokens")
		}
		after := a.enabledSet()
		for _, source := range SourceNames {
			if before[source] != after[source] {
				a.logState(source, after[source])
			}
		}
	}
}

func (a *Authenticator) enabledSet() map[string]bool {
	out := make(map[string]bool, len(SourceNames))
	for _, source := range SourceNames {
		out[source] = a.Enabled(source)
	}
	return out
}

func (a *Authenticator) logState(source string, enabled bool) {
	if enabled {
		a.opts.Log.Info("event source enabled", "source", source)
		return
	}
	a.opts.Log.Info("event source disabled: no token configured, every request is refused", "source", source)
}
