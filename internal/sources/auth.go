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
	"slices"
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

// tokenSet holds the tokens of a file or Secret key as SHA-256 sums, so
// every comparison has the same length whatever the token's. Each sum
// appears once: parseTokens merges the lines of a token listed more than
// once.
type tokenSet []tokenEntry

// tokenEntry is one token of a tokenSet.
type tokenEntry struct {
	sum   [sha256.Size]byte
	grant Grant
	// refused marks a token that is on a refused line: it is not accepted
	// even where another line lists it, so a mistyped scope never leaves
	// its token accepted more widely than the operator wrote.
	refused bool
}

// usable counts the tokens that are accepted.
func (s tokenSet) usable() int {
	n := 0
	for _, e := range s {
		if !e.refused {
			n++
		}
	}
	return n
}

// namespacesOption is the option of a token line that limits an events
// token to registry namespaces: "<token> namespaces=team-a,team-b".
const namespacesOption = "namespaces"

// parseTokens reads one token per line. Surrounding whitespace, blank lines
// and lines starting with # are ignored. For the events source a line is
// "<token>", registry-wide, or "<token> namespaces=<ns>,<ns>...", which may
// publish only for those registry namespaces. The other sources' tokens are
// registry-wide and their lines are taken whole (Harbor may send a header
// value with spaces such as "Basic ..."); a line of theirs with
// namespaces= is refused rather than taken as a token.
//
// A malformed line is refused alone, with an error naming its line number
// (never its token), and the other lines load. Refusing the whole file and
// keeping the previous set would be worse: a rotation that removes a
// leaked token and mistypes another line would keep the leaked token
// accepted, and at start there is no previous set. A refused line's token
// is refused everywhere in the set (see tokenEntry.refused).
//
// A token listed on several lines may publish only for what every one of
// them allows (a bare line allows everything), so adding a scoped line
// never widens a token.
func parseTokens(source string, data []byte) (tokenSet, []error) {
	var (
		out   tokenSet
		errs  []error
		index = map[[sha256.Size]byte]int{}
	)
	add := func(token string, g Grant, refused bool) {
		sum := sha256.Sum256([]byte(token))
		if i, ok := index[sum]; ok {
			out[i].grant = out[i].grant.intersect(g)
			out[i].refused = out[i].refused || refused
			return
		}
		index[sum] = len(out)
		out = append(out, tokenEntry{sum: sum, grant: g, refused: refused})
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	// One more than the largest file, so that any file that is read at all
	// can be one line.
	sc.Buffer(make([]byte, 0, 4096), maxTokenFileSize+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		token, g, err := parseTokenLine(source, line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			if token != "" {
				add(token, Grant{Scoped: true}, true)
			}
			continue
		}
		add(token, g, false)
	}
	if err := sc.Err(); err != nil {
		// Only a line longer than any token file can be stops the scan.
		errs = append(errs, fmt.Errorf("line %d: %w; the lines after it are not read", n+1, err))
	}
	return out, errs
}

// parseTokenLine parses one line that is not blank or a comment. With an
// error, token is the token the line names, if any, so that it can be
// refused; the error never holds a token.
func parseTokenLine(source, line string) (token string, g Grant, err error) {
	fields := strings.Fields(line)
	if source != SourceEvents {
		for _, f := range fields {
			if strings.HasPrefix(f, namespacesOption+"=") {
				return fields[0], Grant{}, fmt.Errorf("%s= limits only tokens of the %s source; %s tokens are registry-wide, so the line is refused", namespacesOption, SourceEvents, source)
			}
		}
		return line, Grant{}, nil
	}
	token = fields[0]
	if strings.HasPrefix(token, namespacesOption+"=") {
		return "", Grant{}, fmt.Errorf("the line starts with %s=; write the token first: <token> %s=<namespace>,<namespace>", namespacesOption, namespacesOption)
	}
	if len(fields) == 1 {
		return token, Grant{}, nil
	}
	var list string
	for i, f := range fields[1:] {
		key, value, ok := strings.Cut(f, "=")
		switch {
		case ok && key == namespacesOption:
			if g.Scoped {
				return token, Grant{}, fmt.Errorf("%s= is given twice; list every namespace in one, comma-separated", namespacesOption)
			}
			g.Scoped, list = true, value
		case ok && (key == "namespace" || key == "ns"):
			return token, Grant{}, fmt.Errorf("unknown option %s=; the option is %s=", key, namespacesOption)
		default:
			// Not shown: a second token on the line would be printed.
			return token, Grant{}, fmt.Errorf("field %d is not %s=<namespace>,<namespace> (it is not shown, as it may be a secret); put one token per line", i+2, namespacesOption)
		}
	}
	if list == "" {
		return token, Grant{}, fmt.Errorf("%s= is empty; list the registry namespaces the token may publish for, or leave the option out for a registry-wide token", namespacesOption)
	}
	for _, ns := range strings.Split(list, ",") {
		switch {
		case ns == "":
			return token, Grant{}, fmt.Errorf("%s= has an empty entry; separate namespaces by single commas, without spaces", namespacesOption)
		case ns == "*":
			return token, Grant{}, fmt.Errorf("%s=* is not accepted; leave the option out for a registry-wide token", namespacesOption)
		case !validComponent(ns):
			return token, Grant{}, fmt.Errorf("%s=: %.64q is not a registry namespace (one path component of lowercase letters, digits and separators . _ __ -)", namespacesOption, ns)
		}
		g.Namespaces = append(g.Namespaces, ns)
	}
	slices.Sort(g.Namespaces)
	g.Namespaces = slices.Compact(g.Namespaces)
	return token, g, nil
}

// match returns the entry of given, and whether it is listed. It compares
// the SHA-256 sums in constant time (crypto/subtle) and always compares
// every token; the index of the match is chosen with ConstantTimeSelect,
// not a branch, so neither the position of a match nor a common prefix
// shows in the timing. Sums are unique in a set, so at most one matches.
func (s tokenSet) match(given string) (tokenEntry, bool) {
	if given == "" {
		return tokenEntry{}, false
	}
	sum := sha256.Sum256([]byte(given))
	at := -1
	for i := range s {
		at = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], s[i].sum[:]), i, at)
	}
	if at < 0 {
		return tokenEntry{}, false
	}
	return s[at], true
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
	source   string
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
		var errs []error
		f.tokens, errs = parseTokens(f.source, data)
		f.sum = sum
		for _, err := range errs {
			f.log.Error(err, "token file line refused; its token is not accepted", "path", f.path)
		}
		f.log.Info("token file loaded", "path", f.path, "tokens", f.tokens.usable(), "refusedLines", len(errs))
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
	// TokenFiles maps a source name to a file of tokens, one per line; an
	// events token's line may limit it to registry namespaces (parseTokens).
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
	// secretSums are the sums of the Secret's keys last parsed, so a
	// refused line is logged when it appears, not at every refresh.
	secretSums map[string][sha256.Size]byte
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
		a.files[source] = &tokenFile{source: source, path: path, interval: opts.FileCheckInterval, now: opts.Now, log: opts.Log.WithValues("source", source)}
	}
	return a
}

// Authenticate reports whether the Authorization header value carries one
// of source's tokens. The harbor source also accepts the token without the
// Bearer scheme.
func (a *Authenticator) Authenticate(source, authorization string) bool {
	_, ok := a.Authorize(source, authorization)
	return ok
}

// Authorize is Authenticate that also returns what the token may publish.
// A token in both the file and the Secret may publish only for what both
// allow, and is refused when either refused its line.
func (a *Authenticator) Authorize(source, authorization string) (Grant, bool) {
	tok, ok := parseAuthorization(authorization, source == SourceHarbor)
	if !ok {
		return Grant{}, false
	}
	// Compare against both sets without short-circuiting.
	fromFile, inFile := a.fileTokens(source).match(tok)
	fromSecret, inSecret := a.secretTokensFor(source).match(tok)
	var (
		g      Grant
		listed bool
	)
	for _, m := range []struct {
		e  tokenEntry
		ok bool
	}{{fromFile, inFile}, {fromSecret, inSecret}} {
		if !m.ok {
			continue
		}
		if m.e.refused {
			return Grant{}, false
		}
		g, listed = g.intersect(m.e.grant), true
	}
	return g, listed
}

// Enabled reports whether source has any token configured.
func (a *Authenticator) Enabled(source string) bool {
	return a.fileTokens(source).usable() > 0 || a.secretTokensFor(source).usable() > 0
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
		a.setSecretTokens(nil, nil)
		return fmt.Errorf("tokens Secret %s not found: its sources accept nothing", a.opts.Secret)
	case err != nil:
		return fmt.Errorf("reading tokens Secret %s: %w", a.opts.Secret, err)
	}
	tokens := map[string]tokenSet{}
	sums := map[string][sha256.Size]byte{}
	for _, source := range SourceNames {
		data, ok := secret.Data[source]
		if !ok || len(data) > maxTokenFileSize {
			continue
		}
		var errs []error
		tokens[source], errs = parseTokens(source, data)
		sums[source] = sha256.Sum256(data)
		if a.secretSum(source) != sums[source] {
			for _, err := range errs {
				a.opts.Log.Error(err, "tokens Secret line refused; its token is not accepted", "secret", a.opts.Secret.String(), "key", source)
			}
		}
	}
	a.setSecretTokens(tokens, sums)
	return nil
}

func (a *Authenticator) secretSum(source string) [sha256.Size]byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.secretSums[source]
}

func (a *Authenticator) setSecretTokens(tokens map[string]tokenSet, sums map[string][sha256.Size]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.secretTokens, a.secretSums = tokens, sums
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
