package sources

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubehook/kubehook/internal/intake"
)

// fuzzSeeds adds every testdata/<source>/*.json file to the corpus, each
// followed by the fuzz target's other arguments, extra.
func fuzzSeeds(f *testing.F, source string, extra ...any) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", source, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata/%s (%v)", source, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]any{data}, extra...)...)
	}
}

// checkMapped checks a parser's answer: an *InputError and no events, or
// events that each pass checkMappedEvent.
func checkMapped(t *testing.T, evs []intake.Event, err error) {
	t.Helper()
	if err != nil {
		if _, ok := isInputError(err); !ok {
			t.Fatalf("error %v (%T) is not an *InputError", err, err)
		}
		if evs != nil {
			t.Fatalf("events returned with an error: %v", evs)
		}
		return
	}
	for _, ev := range evs {
		checkMappedEvent(t, ev)
	}
}

// FuzzDistribution: Distribution never panics; it returns either events
// that are fit to deliver (a known type, contents that validate, the
// repository the contents name) or an *InputError and no events.
func FuzzDistribution(f *testing.F) {
	fuzzSeeds(f, "distribution")
	f.Add(distributionEnvelope(pushEvent))
	f.Add(distributionEnvelope(pushEvent, `{"action":"delete","timestamp":"2026-11-27T17:02:41Z","target":{"repository":"acme/web"}}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":[{"action":"pull"}]}`))
	f.Add(distributionEnvelope(
		pullEvent("HEAD", "1.4.2", "2026-11-27T16:54:10Z", "10.1.2.3:1", "containerd/v1.7.13"),
		pullEvent("GET", "", "2026-11-27T16:54:11Z", "10.1.2.3:2", "containerd/v1.7.13")))
	insp := newWebInspector()
	// Shared across inputs, as the server shares it across requests.
	resolutions := NewTagResolutions(TagResolutionWindow, 1000)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := Distribution(context.Background(), body, MapOptions{RegistryHost: "registry.example.com", Resolutions: resolutions}, insp)
		checkMapped(t, evs, err)
	})
}
