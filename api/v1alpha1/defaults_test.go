package v1alpha1_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// settings is what the accessors return for one spec.
type settings struct {
	timeout         time.Duration
	maxAttempts     int
	backoffPolicy   kubehookv1.BackoffPolicy
	backoffDelay    time.Duration
	backoffMax      time.Duration
	deactivateAfter time.Duration
	payloadFormat   kubehookv1.PayloadFormat
}

func accessors(s *kubehookv1.WebhookSubscriptionSpec) settings {
	return settings{
		timeout:         s.GetTimeout(),
		maxAttempts:     s.GetMaxAttempts(),
		backoffPolicy:   s.GetBackoffPolicy(),
		backoffDelay:    s.GetBackoffDelay(),
		backoffMax:      s.GetBackoffMax(),
		deactivateAfter: s.GetDeactivateAfter(),
		payloadFormat:   s.GetPayloadFormat(),
	}
}

// The defaults the field comments of DeliverySpec and PayloadFormat promise.
var documentedDefaults = settings{
	timeout:         10 * time.Second,
	maxAttempts:     10,
	backoffPolicy:   kubehookv1.BackoffExponential,
	backoffDelay:    5 * time.Second,
	backoffMax:      time.Hour,
	deactivateAfter: 24 * time.Hour,
	payloadFormat:   kubehookv1.PayloadFormatDTR,
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func int32p(n int32) *int32 { return &n }

// TestAccessorsDefaultUnsetFields proves that unset fields (an old object
// with no delivery block, or an empty one) read as the documented defaults
// and that set fields, zero-like values included, are returned as they are.
func TestAccessorsDefaultUnsetFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec kubehookv1.WebhookSubscriptionSpec
		want settings
	}{
		{"nil delivery", kubehookv1.WebhookSubscriptionSpec{}, documentedDefaults},
		{"empty delivery", kubehookv1.WebhookSubscriptionSpec{Delivery: &kubehookv1.DeliverySpec{}}, documentedDefaults},
		{
			"every field set",
			kubehookv1.WebhookSubscriptionSpec{
				PayloadFormat: kubehookv1.PayloadFormatCloudEvents,
				Delivery: &kubehookv1.DeliverySpec{
					Timeout:         dur(30 * time.Second),
					MaxAttempts:     int32p(3),
					BackoffPolicy:   kubehookv1.BackoffLinear,
					BackoffDelay:    dur(250 * time.Millisecond),
					BackoffMax:      dur(2 * time.Minute),
					DeactivateAfter: dur(90 * time.Minute),
				},
			},
			settings{
				timeout:         30 * time.Second,
				maxAttempts:     3,
				backoffPolicy:   kubehookv1.BackoffLinear,
				backoffDelay:    250 * time.Millisecond,
				backoffMax:      2 * time.Minute,
				deactivateAfter: 90 * time.Minute,
				payloadFormat:   kubehookv1.PayloadFormatCloudEvents,
			},
		},
		{
			// A set zero is returned, not replaced by the default, so
			// ValidateSpec can reject it instead of silently using 10s.
			"zero values set",
			kubehookv1.WebhookSubscriptionSpec{Delivery: &kubehookv1.DeliverySpec{
				Timeout:         dur(0),
				MaxAttempts:     int32p(0),
				BackoffDelay:    dur(0),
				BackoffMax:      dur(0),
				DeactivateAfter: dur(0),
			}},
			settings{
				backoffPolicy: kubehookv1.BackoffExponential,
				payloadFormat: kubehookv1.PayloadFormatDTR,
			},
		},
		{
			"one field set, the others default",
			kubehookv1.WebhookSubscriptionSpec{Delivery: &kubehookv1.DeliverySpec{MaxAttempts: int32p(100)}},
			func() settings { s := documentedDefaults; s.maxAttempts = 100; return s }(),
		},
		{
			"payloadFormat DTR set explicitly",
			kubehookv1.WebhookSubscriptionSpec{PayloadFormat: kubehookv1.PayloadFormatDTR},
			documentedDefaults,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := accessors(&tc.spec); got != tc.want {
				t.Errorf("accessors = %+v\nwant        %+v", got, tc.want)
			}
		})
	}
}

// TestDefaultConstantsMatchDocumentation proves the exported Default*
// constants are the documented values the CRD's CEL rule also assumes
// (backoffDelay 5s, backoffMax 1h).
func TestDefaultConstantsMatchDocumentation(t *testing.T) {
	got := settings{
		timeout:         kubehookv1.DefaultTimeout,
		maxAttempts:     kubehookv1.DefaultMaxAttempts,
		backoffPolicy:   kubehookv1.DefaultBackoffPolicy,
		backoffDelay:    kubehookv1.DefaultBackoffDelay,
		backoffMax:      kubehookv1.DefaultBackoffMax,
		deactivateAfter: kubehookv1.DefaultDeactivateAfter,
		payloadFormat:   kubehookv1.PayloadFormatDTR,
	}
	if got != documentedDefaults {
		t.Errorf("Default* = %+v\nwant       %+v", got, documentedDefaults)
	}
}

// TestDefaultsAreValid proves that a spec relying on every default passes
// ValidateSpec, so the defaults sit inside the ranges the API enforces.
func TestDefaultsAreValid(t *testing.T) {
	spec := &kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Endpoint: "https://hooks.example.com/registry"}
	if err := kubehookv1.ValidateSpec(spec); err != nil {
		t.Errorf("ValidateSpec of a spec with default delivery settings: %v", err)
	}
}

// TestEventTypeScope proves which keys each DTR event type takes: REPO_*
// a registry namespace, SCANNER_UPDATE_COMPLETED none, the rest a namespace
// or repository.
func TestEventTypeScope(t *testing.T) {
	want := map[kubehookv1.EventType]kubehookv1.Scope{
		kubehookv1.TagPush:                kubehookv1.RepositoryScope,
		kubehookv1.TagPull:                kubehookv1.RepositoryScope,
		kubehookv1.TagDelete:              kubehookv1.RepositoryScope,
		kubehookv1.ManifestPush:           kubehookv1.RepositoryScope,
		kubehookv1.ManifestPull:           kubehookv1.RepositoryScope,
		kubehookv1.ManifestDelete:         kubehookv1.RepositoryScope,
		kubehookv1.ScanCompleted:          kubehookv1.RepositoryScope,
		kubehookv1.ScanFailed:             kubehookv1.RepositoryScope,
		kubehookv1.Promotion:              kubehookv1.RepositoryScope,
		kubehookv1.PushMirroring:          kubehookv1.RepositoryScope,
		kubehookv1.PollMirroring:          kubehookv1.RepositoryScope,
		kubehookv1.RepoEvent:              kubehookv1.NamespaceScope,
		kubehookv1.RepoCreated:            kubehookv1.NamespaceScope,
		kubehookv1.RepoUpdated:            kubehookv1.NamespaceScope,
		kubehookv1.RepoDeleted:            kubehookv1.NamespaceScope,
		kubehookv1.ScannerUpdateCompleted: kubehookv1.GlobalScope,
		kubehookv1.ChartPush:              kubehookv1.RepositoryScope,
		kubehookv1.ChartPull:              kubehookv1.RepositoryScope,
		kubehookv1.ChartDelete:            kubehookv1.RepositoryScope,
	}
	if len(kubehookv1.EventTypes) != len(want) {
		t.Errorf("EventTypes has %d entries, the DTR API has %d", len(kubehookv1.EventTypes), len(want))
	}
	seen := map[kubehookv1.EventType]bool{}
	for _, typ := range kubehookv1.EventTypes {
		if seen[typ] {
			t.Errorf("EventTypes lists %s twice", typ)
		}
		seen[typ] = true
		w, ok := want[typ]
		if !ok {
			t.Errorf("EventTypes lists %s, which is not a DTR event type", typ)
			continue
		}
		if got := typ.Scope(); got != w {
			t.Errorf("%s.Scope() = %d, want %d", typ, got, w)
		}
	}
	for typ := range want {
		if !seen[typ] {
			t.Errorf("EventTypes misses %s", typ)
		}
	}
}
