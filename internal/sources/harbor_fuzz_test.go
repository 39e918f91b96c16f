package sources

import (
	"context"
	"testing"
)

// FuzzHarbor: Harbor never panics; it returns either events fit to deliver
// or an *InputError and no events.
func FuzzHarbor(f *testing.F) {
	fuzzSeeds(f, "harbor")
	f.Add(harborBody("PUSH_ARTIFACT", `{"digest":"`+webDigest+`","tag":"1.4.2"}`))
	f.Add(harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","scan_overview":{"r":{"scan_status":"Running","summary":{"summary":{"High":1}}}}}`))
	f.Add(harborBody("DELETE_CHART", `{"tag":"0.1.0"}`))
	f.Add([]byte(`{"type":"PULL_ARTIFACT"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := Harbor(context.Background(), body, MapOptions{RegistryHost: "registry.example.com"})
		checkMapped(t, evs, err)
	})
}
