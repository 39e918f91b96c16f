package v1alpha1_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"go/format"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Why ValidateSpec is not asked about a bad manifest (badCase.goSkip).
const (
	// notExpressible: the value does not decode into the Go types at all
	// (wrong JSON type, unparsable duration), so no stored object can carry it.
	notExpressible = "not expressible in the Go types"
	// byController: the controller checks it when it resolves the reference
	// or parses the TLS material, not ValidateSpec.
	byController = "checked by the controller, not ValidateSpec"
)

// badCase is a spec that admission must refuse.
type badCase struct {
	name string
	// spec is the YAML of .spec (unindented).
	spec string
	// want are substrings the API server's error must contain: the field
	// path and the readable CEL message or OpenAPI reason.
	want []string
	// goWant is a substring ValidateSpec's error must contain for the same
	// spec decoded into the Go types; empty when goSkip says why not.
	goWant string
	goSkip string
}

const ep = "endpoint: https://hooks.example.com/registry\n"

func badCases() []badCase {
	return []badCase{
		// type
		{name: "missing type", spec: ep,
			want: []string{"spec.type: Required value"}, goWant: `type "" is not a known event type`},
		{name: "unknown type", spec: "type: TAG_PUSHED\n" + ep,
			want: []string{`spec.type: Unsupported value: "TAG_PUSHED"`}, goWant: `type "TAG_PUSHED" is not a known event type`},
		{name: "type in lower case", spec: "type: tag_push\n" + ep,
			want: []string{`spec.type: Unsupported value: "tag_push"`}, goWant: "not a known event type"},
		{name: "type is a number", spec: "type: 3\n" + ep,
			want: []string{"spec.type", "must be of type string"}, goSkip: notExpressible},

		// endpoint
		{name: "missing endpoint", spec: "type: TAG_PUSH\n",
			want: []string{"spec.endpoint: Required value"}, goWant: "must be an absolute http:// or https:// URL with a host"},
		{name: "empty endpoint", spec: "type: TAG_PUSH\nendpoint: \"\"\n",
			want: []string{"spec.endpoint", "should be at least 1 chars long"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint not a URL", spec: "type: TAG_PUSH\nendpoint: not a url\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint without scheme", spec: "type: TAG_PUSH\nendpoint: hooks.example.com/registry\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint ftp", spec: "type: TAG_PUSH\nendpoint: ftp://hooks.example.com/registry\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint without host", spec: "type: TAG_PUSH\nendpoint: https://\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint with empty host and a path", spec: "type: TAG_PUSH\nendpoint: https:///registry\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint with port but no host", spec: "type: TAG_PUSH\nendpoint: http://:8080/registry\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "relative endpoint", spec: "type: TAG_PUSH\nendpoint: /registry\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "opaque endpoint", spec: "type: TAG_PUSH\nendpoint: \"mailto:ops@example.com\"\n",
			want: []string{"spec.endpoint", "endpoint must be an absolute http:// or https:// URL with a host"}, goWant: "must be an absolute http:// or https:// URL"},
		{name: "endpoint too long", spec: "type: TAG_PUSH\nendpoint: https://hooks.example.com/" + strings.Repeat("a", 2048) + "\n",
			want: []string{"spec.endpoint", "Too long", "2048"}, goWant: "endpoint is longer than 2048 characters"},
		{name: "endpoint with credentials", spec: "type: TAG_PUSH\nendpoint: https://user:secret@hooks.example.com/registry\n",
			want: []string{"spec.endpoint", "endpoint must not contain credentials"}, goWant: "endpoint must not contain credentials"},

		// key and its scope
		{name: "SCANNER_UPDATE_COMPLETED with a namespace key", spec: "type: SCANNER_UPDATE_COMPLETED\nkey: acme\n" + ep,
			want: []string{"spec: Invalid value", "SCANNER_UPDATE_COMPLETED is a global event: key must be empty"}, goWant: "SCANNER_UPDATE_COMPLETED is a global event: key must be empty"},
		{name: "SCANNER_UPDATE_COMPLETED with a repository key", spec: "type: SCANNER_UPDATE_COMPLETED\nkey: acme/app\n" + ep,
			want: []string{"SCANNER_UPDATE_COMPLETED is a global event: key must be empty"}, goWant: "is a global event"},
		{name: "REPO_CREATED with a repository key", spec: "type: REPO_CREATED\nkey: ns/repo\n" + ep,
			want: []string{"spec: Invalid value", "repository events (REPO_*) are scoped to a registry namespace: key must be a namespace such as 'acme', not a repository"}, goWant: "REPO_CREATED is scoped to a registry namespace"},
		{name: "REPO_EVENT with a repository key", spec: "type: REPO_EVENT\nkey: ns/repo\n" + ep,
			want: []string{"repository events (REPO_*) are scoped to a registry namespace"}, goWant: "REPO_EVENT is scoped to a registry namespace"},
		{name: "REPO_UPDATED with a repository key", spec: "type: REPO_UPDATED\nkey: ns/repo\n" + ep,
			want: []string{"repository events (REPO_*) are scoped to a registry namespace"}, goWant: "REPO_UPDATED is scoped to a registry namespace"},
		{name: "REPO_DELETED with a nested repository key", spec: "type: REPO_DELETED\nkey: ns/team/repo\n" + ep,
			want: []string{"repository events (REPO_*) are scoped to a registry namespace"}, goWant: "REPO_DELETED is scoped to a registry namespace"},
		{name: "key with upper case", spec: "type: TAG_PUSH\nkey: Acme/App\n" + ep,
			want: []string{"spec.key", "should match"}, goWant: `key "Acme/App" is not a registry namespace or repository path`},
		{name: "key with trailing slash", spec: "type: TAG_PUSH\nkey: acme/\n" + ep,
			want: []string{"spec.key", "should match"}, goWant: "is not a registry namespace or repository path"},
		{name: "key with leading slash", spec: "type: TAG_PUSH\nkey: /acme\n" + ep,
			want: []string{"spec.key", "should match"}, goWant: "is not a registry namespace or repository path"},
		{name: "key with empty component", spec: "type: TAG_PUSH\nkey: acme//app\n" + ep,
			want: []string{"spec.key", "should match"}, goWant: "is not a registry namespace or repository path"},
		{name: "key with a tag", spec: "type: TAG_PUSH\nkey: \"acme/app:latest\"\n" + ep,
			want: []string{"spec.key", "should match"}, goWant: "is not a registry namespace or repository path"},
		{name: "key with a separator at the end of a component", spec: "type: TAG_PUSH\nkey: acme-/app\n" + ep,
			want: []string{"spec.key", "should match"}, goWant: "is not a registry namespace or repository path"},
		{name: "key too long", spec: "type: TAG_PUSH\nkey: " + strings.Repeat("a", 256) + "\n" + ep,
			want: []string{"spec.key", "Too long", "255"}, goWant: "is not a registry namespace or repository path"},

		// tlsCert
		{name: "tlsCert not PEM", spec: "type: TAG_PUSH\ntlsCert: MIIBkTCB+wIJAKHHIG\n" + ep,
			want: []string{"spec.tlsCert", "tlsCert must be PEM: one or more -----BEGIN CERTIFICATE----- blocks"}, goSkip: byController},
		{name: "tlsCert a private key", spec: "type: TAG_PUSH\ntlsCert: \"-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----\\n\"\n" + ep,
			want: []string{"spec.tlsCert", "tlsCert must be PEM"}, goSkip: byController},

		// delivery
		{name: "backoffMax below backoffDelay", spec: ep + "type: TAG_PUSH\ndelivery:\n  backoffDelay: 10s\n  backoffMax: 2s\n",
			want: []string{"spec.delivery", "backoffMax must be at least backoffDelay (defaults: backoffDelay 5s, backoffMax 1h)"}, goWant: "backoffMax must be at least backoffDelay"},
		{name: "backoffMax below the default backoffDelay", spec: ep + "type: TAG_PUSH\ndelivery:\n  backoffMax: 4.9s\n",
			want: []string{"spec.delivery", "backoffMax must be at least backoffDelay"}, goWant: "backoffMax must be at least backoffDelay"},
		{name: "backoffDelay above the default backoffMax", spec: ep + "type: TAG_PUSH\ndelivery:\n  backoffDelay: 2h\n",
			want: []string{"spec.delivery.backoffDelay", "backoffDelay must be between 100ms and 1h", "backoffMax must be at least backoffDelay"}, goWant: "backoffMax must be at least backoffDelay"},
		{name: "backoffDelay too short", spec: ep + "type: TAG_PUSH\ndelivery:\n  backoffDelay: 50ms\n",
			want: []string{"spec.delivery.backoffDelay", "backoffDelay must be between 100ms and 1h"}, goWant: "backoffDelay 50ms is not between 100ms and 1h0m0s"},
		{name: "backoffMax too long", spec: ep + "type: TAG_PUSH\ndelivery:\n  backoffMax: 25h\n",
			want: []string{"spec.delivery.backoffMax", "backoffMax must be between 1s and 24h"}, goWant: "backoffMax 25h0m0s is not between 1s and 24h0m0s"},
		{name: "timeout 0s", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: 0s\n",
			want: []string{"spec.delivery.timeout", "timeout must be between 1s and 5m"}, goWant: "timeout 0s is not between 1s and 5m0s"},
		{name: "timeout 10m", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: 10m\n",
			want: []string{"spec.delivery.timeout", "timeout must be between 1s and 5m"}, goWant: "timeout 10m0s is not between 1s and 5m0s"},
		{name: "timeout abc", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: abc\n",
			want: []string{"spec.delivery.timeout", "should match"}, goSkip: notExpressible},
		{name: "timeout without unit", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: \"10\"\n",
			want: []string{"spec.delivery.timeout", "should match"}, goSkip: notExpressible},
		{name: "timeout negative", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: -1s\n",
			want: []string{"spec.delivery.timeout", "should match"}, goWant: "timeout -1s is not between 1s and 5m0s"},
		{name: "timeout a number", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: 10\n",
			want: []string{"spec.delivery.timeout", "must be of type string"}, goSkip: notExpressible},
		{name: "timeout beyond time.Duration", spec: ep + "type: TAG_PUSH\ndelivery:\n  timeout: 9999999999h\n",
			want: []string{"spec.delivery.timeout", "timeout must be between 1s and 5m"}, goSkip: notExpressible},
		{name: "maxAttempts 0", spec: ep + "type: TAG_PUSH\ndelivery:\n  maxAttempts: 0\n",
			want: []string{"spec.delivery.maxAttempts", "should be greater than or equal to 1"}, goWant: "maxAttempts 0 is not between 1 and 100"},
		{name: "maxAttempts 101", spec: ep + "type: TAG_PUSH\ndelivery:\n  maxAttempts: 101\n",
			want: []string{"spec.delivery.maxAttempts", "should be less than or equal to 100"}, goWant: "maxAttempts 101 is not between 1 and 100"},
		{name: "maxAttempts a string", spec: ep + "type: TAG_PUSH\ndelivery:\n  maxAttempts: ten\n",
			want: []string{"spec.delivery.maxAttempts", "must be of type integer"}, goSkip: notExpressible},
		{name: "deactivateAfter 30s", spec: ep + "type: TAG_PUSH\ndelivery:\n  deactivateAfter: 30s\n",
			want: []string{"spec.delivery.deactivateAfter", "deactivateAfter must be between 1m and 720h"}, goWant: "deactivateAfter 30s is not between 1m0s and 720h0m0s"},
		{name: "deactivateAfter 721h", spec: ep + "type: TAG_PUSH\ndelivery:\n  deactivateAfter: 721h\n",
			want: []string{"spec.delivery.deactivateAfter", "deactivateAfter must be between 1m and 720h"}, goWant: "deactivateAfter 721h0m0s is not between 1m0s and 720h0m0s"},
		{name: "backoffPolicy random", spec: ep + "type: TAG_PUSH\ndelivery:\n  backoffPolicy: random\n",
			want: []string{`spec.delivery.backoffPolicy: Unsupported value: "random"`, `"exponential", "linear"`}, goWant: `backoffPolicy "random" is not exponential or linear`},
		{name: "delivery not an object", spec: ep + "type: TAG_PUSH\ndelivery: fast\n",
			want: []string{"spec.delivery", "must be of type object"}, goSkip: notExpressible},

		// payloadFormat
		{name: "payloadFormat XML", spec: ep + "type: TAG_PUSH\npayloadFormat: XML\n",
			want: []string{`spec.payloadFormat: Unsupported value: "XML"`, `"DTR", "CloudEvents"`}, goWant: `payloadFormat "XML" is not DTR or CloudEvents`},
		{name: "payloadFormat in lower case", spec: ep + "type: TAG_PUSH\npayloadFormat: cloudevents\n",
			want: []string{`spec.payloadFormat: Unsupported value: "cloudevents"`}, goWant: `payloadFormat "cloudevents" is not DTR or CloudEvents`},

		// skipTLSVerification
		{name: "skipTLSVerification a string", spec: ep + "type: TAG_PUSH\nskipTLSVerification: \"yes\"\n",
			want: []string{"spec.skipTLSVerification", "must be of type boolean"}, goSkip: notExpressible},

		// secret references
		{name: "tlsSecretRef with empty name", spec: ep + "type: TAG_PUSH\ntlsSecretRef:\n  name: \"\"\n",
			want: []string{"spec.tlsSecretRef.name", "should be at least 1 chars long"}, goSkip: byController},
		{name: "signingSecretRef with an invalid name", spec: ep + "type: TAG_PUSH\nsigningSecretRef:\n  name: Hook_Key\n",
			want: []string{"spec.signingSecretRef.name", "should match"}, goSkip: byController},
		{name: "headersSecretRef without name", spec: ep + "type: TAG_PUSH\nheadersSecretRef: {}\n",
			want: []string{"spec.headersSecretRef.name: Required value"}, goSkip: byController},
		{name: "tlsSecretRef name too long", spec: ep + "type: TAG_PUSH\ntlsSecretRef:\n  name: " + strings.Repeat("a", 254) + "\n",
			want: []string{"spec.tlsSecretRef.name", "Too long", "253"}, goSkip: byController},
	}
}

// TestAdmissionRejectsBadSpecs proves that a server-side dry run of each bad
// manifest fails with a readable reason naming the field, and that
// ValidateSpec, the Go copy of the critical rules, rejects the same spec.
func TestAdmissionRejectsBadSpecs(t *testing.T) {
	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obj := manifest(t, tc.spec)
			err := k8sClient.Create(context.Background(), obj, client.DryRunAll)
			if err == nil {
				t.Fatalf("dry run accepted the spec:\n%s", tc.spec)
			}
			t.Logf("refused: %v", err)
			if !apierrors.IsInvalid(err) {
				t.Errorf("dry run failed with %v, want an Invalid (422) error", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("dry run error\n  %v\ndoes not contain\n  %s", err, want)
				}
			}
		})
	}
}

func TestValidateSpecRejectsBadSpecs(t *testing.T) {
	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.goWant == "") == (tc.goSkip == "") {
				t.Fatal("test case must set exactly one of goWant and goSkip")
			}
			spec, decodeErr := decodeSpec(manifest(t, tc.spec))
			if tc.goSkip == notExpressible {
				if decodeErr == nil {
					t.Fatalf("the spec decodes into the Go types (%+v); give it a goWant", spec)
				}
				return
			}
			if decodeErr != nil {
				t.Fatalf("decoding into the Go types: %v", decodeErr)
			}
			if tc.goSkip != "" {
				t.Skipf("%s (ValidateSpec returns %v)", tc.goSkip, kubehookv1.ValidateSpec(spec))
			}
			err := kubehookv1.ValidateSpec(spec)
			if err == nil {
				t.Fatalf("ValidateSpec accepted %+v", spec)
			}
			if !strings.Contains(err.Error(), tc.goWant) {
				t.Errorf("ValidateSpec error\n  %v\ndoes not contain\n  %s", err, tc.goWant)
			}
		})
	}
}

// goodCases are specs admission and ValidateSpec must accept.
func goodCases(t *testing.T) []struct{ name, spec string } {
	longKey := strings.Repeat("a", 127) + "/" + strings.Repeat("b", 127)
	return []struct{ name, spec string }{
		// The DTR POST /api/v0/webhooks request body, verbatim.
		{"DTR request body", `{"endpoint": "https://webhook.site/441b1584-949d-4608-a7f3-f240bdd31019", "key": "maria-testorg/lab-words", "skipTLSVerification": true, "type": "TAG_PULL"}`},
		{"nested repository key", "type: TAG_PUSH\nkey: a/b/c\n" + ep},
		{"namespace key", "type: TAG_PUSH\nkey: acme\n" + ep},
		{"key with every separator", "type: MANIFEST_PUSH\nkey: acme-corp/app.v2_x__y--z\n" + ep},
		{"key of 255 characters", "type: TAG_PUSH\nkey: " + longKey + "\n" + ep},
		// Admission allows the empty key; whether this namespace may use it
		// is the controller's tenancy check.
		{"empty key", "type: TAG_PUSH\nkey: \"\"\n" + ep},
		{"no key", "type: TAG_DELETE\n" + ep},
		{"REPO_CREATED with a namespace key", "type: REPO_CREATED\nkey: acme\n" + ep},
		{"REPO_EVENT without key", "type: REPO_EVENT\n" + ep},
		{"SCANNER_UPDATE_COMPLETED without key", "type: SCANNER_UPDATE_COMPLETED\n" + ep},
		{"SCANNER_UPDATE_COMPLETED with empty key", "type: SCANNER_UPDATE_COMPLETED\nkey: \"\"\n" + ep},
		{"http endpoint with port and query", "type: TAG_PUSH\nendpoint: \"http://hooks.internal:8080/registry?token=abc&x=1\"\n"},
		{"IPv6 endpoint", "type: TAG_PUSH\nendpoint: \"https://[2001:db8::1]:8443/hook\"\n"},
		{"full delivery block", ep + `type: TAG_PUSH
key: acme/app
delivery:
  timeout: 30s
  maxAttempts: 5
  backoffPolicy: linear
  backoffDelay: 500ms
  backoffMax: 30s
  deactivateAfter: 1h30m
`},
		{"delivery lower bounds", ep + `type: TAG_PUSH
delivery:
  timeout: 1s
  maxAttempts: 1
  backoffPolicy: exponential
  backoffDelay: 100ms
  backoffMax: 1s
  deactivateAfter: 1m
`},
		{"delivery upper bounds", ep + `type: TAG_PUSH
delivery:
  timeout: 5m
  maxAttempts: 100
  backoffDelay: 1h
  backoffMax: 24h
  deactivateAfter: 720h
`},
		{"backoffDelay equal to the default backoffMax", ep + "type: TAG_PUSH\ndelivery:\n  backoffDelay: 1h\n"},
		{"backoffMax equal to the default backoffDelay", ep + "type: TAG_PUSH\ndelivery:\n  backoffMax: 5s\n"},
		{"empty delivery block", ep + "type: TAG_PUSH\ndelivery: {}\n"},
		{"CloudEvents with secret references", ep + `type: SCAN_COMPLETED
key: acme/app
payloadFormat: CloudEvents
suspend: true
tlsSecretRef: {name: endpoint-tls}
signingSecretRef: {name: hook-key.v2}
headersSecretRef: {name: hook-hdrs}
`},
		{"DTR payload format", ep + "type: CHART_PUSH\npayloadFormat: DTR\n"},
		{"tlsCert with a real self-signed certificate", ep + "type: TAG_PUSH\ntlsCert: " + jsonString(t, selfSignedPEM(t)) + "\n"},
		{"tlsCert empty", ep + "type: TAG_PUSH\ntlsCert: \"\"\n"},
	}
}

// TestAdmissionAcceptsGoodSpecs proves that a dry run of each good manifest
// succeeds and returns the spec unchanged (nothing pruned or rewritten), and
// that ValidateSpec accepts it too.
func TestAdmissionAcceptsGoodSpecs(t *testing.T) {
	for _, tc := range goodCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obj := manifest(t, tc.spec)
			sent := obj.DeepCopy()
			if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
				t.Fatalf("dry run rejected the spec: %v\n%s", err, tc.spec)
			}
			if got, want := obj.Object["spec"], sent.Object["spec"]; !reflect.DeepEqual(got, want) {
				t.Errorf("dry run returned spec\n  %v\nwant\n  %v", got, want)
			}
			spec, err := decodeSpec(sent)
			if err != nil {
				t.Fatal(err)
			}
			if err := kubehookv1.ValidateSpec(spec); err != nil {
				t.Errorf("ValidateSpec rejected a spec admission accepts: %v", err)
			}
		})
	}
}

// TestEveryEventTypeIsAdmitted proves that the CRD enum admits every type Go
// knows, each with a key of its scope, and refuses one of a wider scope.
func TestEveryEventTypeIsAdmitted(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			var key, tooWide string
			switch typ.Scope() {
			case kubehookv1.RepositoryScope:
				key = "acme/app"
			case kubehookv1.NamespaceScope:
				key, tooWide = "acme", "acme/app"
			case kubehookv1.GlobalScope:
				tooWide = "acme"
			}
			spec := "type: " + string(typ) + "\nkey: \"" + key + "\"\n" + ep
			if err := k8sClient.Create(context.Background(), manifest(t, spec), client.DryRunAll); err != nil {
				t.Errorf("dry run of %s with key %q: %v", typ, key, err)
			}
			if tooWide != "" {
				spec := "type: " + string(typ) + "\nkey: " + tooWide + "\n" + ep
				if err := k8sClient.Create(context.Background(), manifest(t, spec), client.DryRunAll); err == nil {
					t.Errorf("dry run of %s with key %q was accepted", typ, tooWide)
				}
			}
		})
	}
}

// TestEndpointRuleMatchesGo proves that the CEL endpoint rule and
// ValidateEndpoint agree on URLs at the edges of Go's and CEL's URL parsers,
// so an endpoint admission accepts is never stalled by the controller, nor
// the other way round.
func TestEndpointRuleMatchesGo(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		valid    bool
	}{
		{"https://hooks.example.com/a#frag", true},
		{"HTTPS://hooks.example.com/", true},
		{"https://user:pass@hooks.example.com/", false},
		{"https://hooks.example.com?x", true},
		{"https://hooks.example.com:/", true},
		{"https://[fe80::1%25eth0]/", true},
		{"http://1.2.3.4/", true},
		{"https://hooks.example.com/a b", true},
		{"https://hooks ex.com/", false},
		{"https://%zz/", false},
		{"https://hooks.example.com/%zz", false},
		{"http://[::1/", false},
		{"https:hooks.example.com", false},
		{"http://hooks.example.com:abc/", false},
		{" https://hooks.example.com/", false},
		{"https://hooks.example.com/\t", false},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			t.Parallel()
			obj := manifest(t, "type: TAG_PUSH\nendpoint: "+jsonString(t, tc.endpoint)+"\n")
			serverErr := k8sClient.Create(context.Background(), obj, client.DryRunAll)
			goErr := kubehookv1.ValidateEndpoint(tc.endpoint)
			if (serverErr == nil) != tc.valid {
				t.Errorf("admission: %v, want valid=%t", serverErr, tc.valid)
			}
			if (goErr == nil) != tc.valid {
				t.Errorf("ValidateEndpoint: %v, want valid=%t", goErr, tc.valid)
			}
		})
	}
}

// TestCRDEnumsMatchGo proves that the enums the API server enforces are
// exactly the Go constants, so no type is accepted that the engine does not
// know, nor the other way round.
func TestCRDEnumsMatchGo(t *testing.T) {
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: "webhooksubscriptions.kubehook.io"}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("CRD has %d versions, want 1", len(versions))
	}
	spec, _, _ := unstructured.NestedMap(versions[0].(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties")
	enum := func(path ...string) []string {
		t.Helper()
		values, found, err := unstructured.NestedStringSlice(spec, append(path, "enum")...)
		if !found || err != nil {
			t.Fatalf("no enum at spec.%s: %v", strings.Join(path, ".properties."), err)
		}
		return values
	}
	var eventTypes []string
	for _, typ := range kubehookv1.EventTypes {
		eventTypes = append(eventTypes, string(typ))
	}
	for _, c := range []struct {
		name      string
		crd, want []string
	}{
		{"type", enum("type"), eventTypes},
		{"payloadFormat", enum("payloadFormat"), []string{string(kubehookv1.PayloadFormatDTR), string(kubehookv1.PayloadFormatCloudEvents)}},
		{"delivery.backoffPolicy", enum("delivery", "properties", "backoffPolicy"), []string{string(kubehookv1.BackoffExponential), string(kubehookv1.BackoffLinear)}},
	} {
		if !slices.Equal(c.crd, c.want) {
			t.Errorf("CRD enum of spec.%s is %v, Go has %v", c.name, c.crd, c.want)
		}
	}
}

// TestUnknownSpecField proves what happens to a misspelt field: refused
// under strict field validation, pruned (not stored) otherwise.
func TestUnknownSpecField(t *testing.T) {
	const spec = "type: TAG_PUSH\nendpoint: https://hooks.example.com/registry\nendpointURL: https://other.example.com\ndelivery:\n  retries: 3\n"

	err := k8sClient.Create(context.Background(), manifest(t, spec), client.DryRunAll, client.FieldValidation("Strict"))
	if err == nil {
		t.Fatal("strict dry run accepted unknown fields")
	}
	for _, want := range []string{`unknown field "spec.endpointURL"`, `unknown field "spec.delivery.retries"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("strict dry run error\n  %v\ndoes not contain\n  %s", err, want)
		}
	}

	obj := manifest(t, spec)
	if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "endpointURL"); found {
		t.Error("spec.endpointURL was kept, want it pruned")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "delivery", "retries"); found {
		t.Error("spec.delivery.retries was kept, want it pruned")
	}
	if got, _, _ := unstructured.NestedString(obj.Object, "spec", "endpoint"); got != "https://hooks.example.com/registry" {
		t.Errorf("spec.endpoint = %q after pruning", got)
	}
}

// TestSpecIsRequired proves that a WebhookSubscription without spec is refused.
func TestSpecIsRequired(t *testing.T) {
	obj := manifest(t, "type: TAG_PUSH\n"+ep)
	delete(obj.Object, "spec")
	err := k8sClient.Create(context.Background(), obj, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "spec: Required value") {
		t.Fatalf("dry run without spec: %v, want spec: Required value", err)
	}
}

// manifest returns a WebhookSubscription in namespace default whose spec is
// the given YAML.
func manifest(t *testing.T, spec string) *unstructured.Unstructured {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: kubehook.io/v1alpha1\nkind: WebhookSubscription\nmetadata:\n  name: admission-test\n  namespace: default\nspec:\n")
	for line := range strings.Lines(spec) {
		b.WriteString("  " + line)
	}
	data, err := utilyaml.ToJSON([]byte(b.String()))
	if err != nil {
		t.Fatalf("test manifest is not YAML: %v\n%s", err, b.String())
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	return obj
}

// decodeSpec decodes the spec of obj into the Go type, as the controller's
// client would.
func decodeSpec(obj *unstructured.Unstructured) (*kubehookv1.WebhookSubscriptionSpec, error) {
	data, err := json.Marshal(obj.Object["spec"])
	if err != nil {
		return nil, err
	}
	spec := &kubehookv1.WebhookSubscriptionSpec{}
	if err := json.Unmarshal(data, spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// selfSignedPEM returns a fresh self-signed certificate, PEM encoded.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hooks.example.com"},
		DNSNames:     []string{"hooks.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// jsonString quotes s as JSON, which is also a YAML double-quoted scalar.
func jsonString(t *testing.T, s string) string {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestMarkersSurviveGofmt guards the CRD against gofmt: doc-comment
// formatting of top-level declarations turns two apostrophes into a
// typographic quote, so a type marker with an empty CEL string regenerates
// into a rule the API server refuses to compile, and no CRD installs. Every
// marker must be ASCII and unchanged by gofmt.
func TestMarkersSurviveGofmt(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		formatted, err := format.Source(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		want := markers(string(formatted))
		for i, line := range markers(string(data)) {
			for _, r := range line {
				if r > 0x7f {
					t.Errorf("%s: marker has non-ASCII %q: %s", file, r, line)
					break
				}
			}
			if i < len(want) && want[i] != line {
				t.Errorf("%s: gofmt rewrites marker\n  %s\nto\n  %s", file, line, want[i])
			}
		}
	}
}

// markers returns the +kubebuilder marker lines of a Go source file.
func markers(src string) []string {
	var lines []string
	for line := range strings.Lines(src) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "// +kubebuilder:") {
			lines = append(lines, line)
		}
	}
	return lines
}
