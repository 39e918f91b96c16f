package sources

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
)

// fuzzSecret is the token of the line FuzzParseTokens adds to every input;
// no error may show it. Its capitals keep it from being a namespace.
const fuzzSecret = "Fuzz-Secret-Token-Q7"

// FuzzParseTokens: parseTokens never panics and never grants more than
// the lines say. An accepted events token is registry-wide only when every
// line listing it is bare, and otherwise may publish exactly for the
// namespaces every "namespaces=" of its lines lists (a line with anything
// else is refused, and so is its token). The other sources' tokens are
// whole lines, never scoped. No error shows the token of a line.
func FuzzParseTokens(f *testing.F) {
	for _, seed := range []struct {
		data string
		rest string
	}{
		{"", ""},
		{"tok-a\n# comment\n\ntok-b namespaces=team-a,team-b\n", " namespaces=acme"},
		{"tok-a namespaces=a\ntok-a namespaces=b\r\n", "\tnamespaces=a,,b"},
		{"tok namespace=a\ntok\n", " namespaces=*"},
		{"namespaces=a tok\n", " namespaces=Team-A"},
		{"Basic dXNlcjpwYXNz\n", " namespaces=a namespaces=b"},
		{"tok namespaces=a, b\n", "x namespaces=ok"},
		{"tok namespaces=a\n", " other-token"},
	} {
		f.Add([]byte(seed.data), seed.rest, true)
		f.Add([]byte(seed.data), seed.rest, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, rest string, events bool) {
		if bytes.Contains(data, []byte(fuzzSecret)) || strings.Contains(rest, fuzzSecret) {
			return
		}
		file := append(append([]byte{}, data...), "\n"+fuzzSecret+rest+"\n"...)
		if len(file) > maxTokenFileSize {
			return
		}
		source := SourceHarbor
		if events {
			source = SourceEvents
		}
		set, errs := parseTokens(source, file)
		for _, err := range errs {
			if !strings.HasPrefix(err.Error(), "line ") || strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("error %q does not start with its line or shows the token", err)
			}
		}

		// The lines as bufio.ScanLines splits them, by the sum of the token
		// each names.
		listings := map[[sha256.Size]byte][][]string{}
		for _, line := range strings.Split(string(file), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fields := strings.Fields(line)
			tok := fields[0]
			if !events {
				tok = line
			}
			listings[sha256.Sum256([]byte(tok))] = append(listings[sha256.Sum256([]byte(tok))], fields)
		}

		seen := map[[sha256.Size]byte]bool{}
		for _, e := range set {
			if seen[e.sum] {
				t.Fatal("a token has two entries")
			}
			seen[e.sum] = true
			if e.refused {
				if len(errs) == 0 {
					t.Fatal("a token is refused without an error")
				}
				continue
			}
			lines := listings[e.sum]
			if len(lines) == 0 {
				t.Fatal("a token no line names is accepted")
			}
			if !events {
				if e.grant.Scoped {
					t.Fatalf("a %s token is scoped: %+v", source, e.grant)
				}
				for _, fields := range lines {
					for _, f := range fields {
						if strings.HasPrefix(f, "namespaces=") {
							t.Fatalf("line %q with a scope is a %s token", strings.Join(fields, " "), source)
						}
					}
				}
				continue
			}
			// The oracle: the intersection of what each line allows.
			want := Grant{}
			for _, fields := range lines {
				switch {
				case len(fields) == 1:
				case len(fields) == 2 && strings.HasPrefix(fields[1], "namespaces="):
					list := strings.Split(strings.TrimPrefix(fields[1], "namespaces="), ",")
					for _, ns := range list {
						if !validComponent(ns) {
							t.Fatalf("line %q with namespace %q is accepted", strings.Join(fields, " "), ns)
						}
					}
					slices.Sort(list)
					want = want.intersect(Grant{Scoped: true, Namespaces: slices.Compact(list)})
				default:
					t.Fatalf("line %q is accepted", strings.Join(fields, " "))
				}
			}
			if e.grant.Scoped != want.Scoped || !slices.Equal(e.grant.Namespaces, want.Namespaces) {
				t.Fatalf("lines %q: grant %+v, want %+v", lines, e.grant, want)
			}
		}

		// Bare events lines keep working, as before scopes existed.
		if events {
			for _, lines := range listings {
				for _, fields := range lines {
					if len(fields) != 1 || strings.HasPrefix(fields[0], "namespaces=") {
						continue
					}
					if _, found := set.match(fields[0]); !found {
						t.Fatalf("bare line %q is not loaded", fields[0])
					}
				}
			}
		}
	})
}
