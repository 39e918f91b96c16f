package payload_test

import (
	"encoding/json"
	"strings"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

func TestValidate(t *testing.T) {
	const tag = `"namespace":"foo","repository":"bar","tag":"latest"`
	tests := []struct {
		name     string
		typ      kubehookv1.EventType
		contents string
		wantErr  []string // substrings of the error; none = valid
	}{
		{"minimal tag push", kubehookv1.TagPush, `{` + tag + `}`, nil},
		{"unknown fields are kept", kubehookv1.TagPush, `{` + tag + `,"location":"/repositories/foo/bar/tags/latest","extra":{"a":[1]}}`, nil},
		{"timestamp with nanoseconds", kubehookv1.TagPush, `{` + tag + `,"pushedAt":"2019-05-22T01:55:20.471286995Z"}`, nil},
		{"timestamp with offset", kubehookv1.TagDelete, `{` + tag + `,"deletedAt":"2019-05-22T03:55:20+02:00"}`, nil},
		{"optional null", kubehookv1.TagPush, `{` + tag + `,"digest":null,"pushedAt":null}`, nil},

		{"unknown type", "TAG_PUSHED", `{}`, []string{`type: unknown event type "TAG_PUSHED"`}},
		{"empty contents", kubehookv1.TagPush, ``, []string{"contents: required"}},
		{"contents null", kubehookv1.TagPush, `null`, []string{"contents: must be a JSON object"}},
		{"contents array", kubehookv1.TagPush, `[]`, []string{"contents: must be a JSON object"}},
		{"contents string", kubehookv1.TagPush, `"x"`, []string{"contents: must be a JSON object"}},
		{"contents truncated", kubehookv1.TagPush, `{"namespace":"foo"`, []string{"contents: must be a JSON object"}},
		{"missing tag", kubehookv1.TagPush, `{"namespace":"foo","repository":"bar"}`, []string{"contents.tag: required"}},
		{"empty tag", kubehookv1.TagPull, `{"namespace":"foo","repository":"bar","tag":""}`, []string{"contents.tag: required"}},
		{"null tag", kubehookv1.TagDelete, `{"namespace":"foo","repository":"bar","tag":null}`, []string{"contents.tag: required"}},
		{"tag not a string", kubehookv1.TagPush, `{"namespace":"foo","repository":"bar","tag":7}`, []string{"contents.tag: must be a string"}},
		{"all missing, all named", kubehookv1.TagPush, `{}`, []string{"contents.namespace: required", "contents.repository: required", "contents.tag: required"}},
		{"bad timestamp", kubehookv1.TagPush, `{` + tag + `,"pushedAt":"yesterday"}`, []string{"contents.pushedAt: must be an RFC 3339 timestamp string"}},
		{"timestamp as number", kubehookv1.TagPush, `{` + tag + `,"pushedAt":1558490120}`, []string{"contents.pushedAt: must be an RFC 3339 timestamp string"}},
		{"author not a string", kubehookv1.TagPush, `{` + tag + `,"author":{"name":"admin"}}`, []string{"contents.author: must be a string"}},
		{"differently cased duplicate", kubehookv1.TagPush, `{` + tag + `,"TAG":7}`, []string{"contents.tag: cannot hold a JSON number"}},

		{"manifest needs digest", kubehookv1.ManifestPush, `{"namespace":"foo","repository":"bar"}`, []string{"contents.digest: required"}},
		{"manifest pull", kubehookv1.ManifestPull, `{"namespace":"foo","repository":"bar","digest":"sha256:00"}`, nil},
		{"manifest delete needs no tag", kubehookv1.ManifestDelete, `{"namespace":"foo","repository":"bar","digest":"sha256:00"}`, nil},

		{"scan completed", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar","scanSummary":{"critical":0,"last_scan_status":6}}`, nil},
		{"scan completed needs summary", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar"}`, []string{"contents.scanSummary: required"}},
		{"summary not an object", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar","scanSummary":[]}`, []string{"contents.scanSummary: must be a JSON object"}},
		{"count not an integer", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar","scanSummary":{"critical":1.5}}`, []string{"contents.scanSummary.critical: must be an integer"}},
		{"count as string", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar","scanSummary":{"major":"2"}}`, []string{"contents.scanSummary.major: must be an integer"}},
		{"scan status out of range", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar","scanSummary":{"last_scan_status":7}}`, []string{"contents.scanSummary.last_scan_status: must be a scan status"}},
		{"bad check time", kubehookv1.ScanCompleted, `{"namespace":"foo","repository":"bar","scanSummary":{"check_completed_at":"2019-13-01T00:00:00Z"}}`, []string{"contents.scanSummary.check_completed_at: must be an RFC 3339"}},
		{"scan failed needs error", kubehookv1.ScanFailed, `{` + tag + `}`, []string{"contents.error: required"}},

		{"promotion", kubehookv1.Promotion, `{"namespace":"foo","repository":"bar","targetRepository":"foo/bar-prod"}`, nil},
		{"promotion needs target", kubehookv1.Promotion, `{"namespace":"foo","repository":"bar"}`, []string{"contents.targetRepository: required"}},
		{"mirroring needs remote", kubehookv1.PollMirroring, `{"namespace":"foo","repository":"bar"}`, []string{"contents.remoteRepository: required"}},
		{"chart needs name and version", kubehookv1.ChartPush, `{"namespace":"foo","repository":"bar"}`, []string{"contents.chartName: required", "contents.chartVersion: required"}},

		{"repo event", kubehookv1.RepoEvent, `{"namespace":"foo","repository":"bar","event":"REPO_UPDATED","data":{"name":"bar"}}`, nil},
		{"repo event without data", kubehookv1.RepoEvent, `{"namespace":"foo","repository":"bar","event":"REPO_DELETED"}`, nil},
		{"repo event needs event", kubehookv1.RepoEvent, `{"namespace":"foo","repository":"bar"}`, []string{"contents.event: required"}},
		{"repo event unknown event", kubehookv1.RepoEvent, `{"namespace":"foo","repository":"bar","event":"REPO_RENAMED"}`, []string{`contents.event: must be one of REPO_CREATED, REPO_UPDATED, REPO_DELETED, not "REPO_RENAMED"`}},
		{"repo event data not object", kubehookv1.RepoEvent, `{"namespace":"foo","repository":"bar","event":"REPO_CREATED","data":"x"}`, []string{"contents.data: must be a JSON object"}},
		{"repo created", kubehookv1.RepoCreated, `{"namespace":"foo","repository":"bar","event":"REPO_CREATED"}`, nil},
		{"repo created with other event", kubehookv1.RepoCreated, `{"namespace":"foo","repository":"bar","event":"REPO_DELETED"}`, []string{`contents.event: must be REPO_CREATED for type REPO_CREATED, not "REPO_DELETED"`}},
		{"repo deleted needs event", kubehookv1.RepoDeleted, `{"namespace":"foo","repository":"bar"}`, []string{"contents.event: required"}},

		{"scanner update", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":false,"db_version":1}`, nil},
		{"scanner update needs no namespace", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":true}`, nil},
		{"scanner update needs success", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9"}`, []string{"contents.success: required"}},
		{"success not a bool", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":"true"}`, []string{"contents.success: must be true or false"}},
		{"db version not an int", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":true,"db_version":"523"}`, []string{"contents.db_version: must be an integer"}},
		{"replicas not an object", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":true,"replicas":[]}`, []string{"contents.replicas: must be a JSON object"}},
		{"replica entry not an object", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":true,"replicas":{"r1":1}}`, []string{"contents.replicas.r1: must be a JSON object"}},
		{"replica version not a string", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":true,"replicas":{"r1":{"version":523}}}`, []string{"contents.replicas.r1.version: must be a string"}},
		{"replica time bad", kubehookv1.ScannerUpdateCompleted, `{"scanner_version":"3.0.9","success":true,"replicas":{"r1":{"db_updated_at":"now"}}}`, []string{"contents.replicas.r1.db_updated_at: must be an RFC 3339"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := payload.Validate(tt.typ, json.RawMessage(tt.contents))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate(%s, %s) = %v, want nil", tt.typ, tt.contents, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%s, %s) = nil, want %q", tt.typ, tt.contents, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate(%s, %s) = %q, want it to contain %q", tt.typ, tt.contents, err, want)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.wantErr) {
				t.Errorf("Validate(%s, %s) reports %d errors, want %d: %q", tt.typ, tt.contents, n, len(tt.wantErr), err)
			}
		})
	}
}

// FuzzValidate feeds arbitrary contents to Validate for every event type.
// Validate must not panic, must be deterministic, must reject everything but
// JSON objects, and whatever it accepts must decode into ContentsFor(type).
func FuzzValidate(f *testing.F) {
	for i, typ := range kubehookv1.EventTypes {
		f.Add(uint8(i), []byte(payload.Sample(typ).Contents))
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"namespace":"foo","repository":"bar","tag":"latest","TAG":1}`,
		`{"scanSummary":{"last_scan_status":-1}}`, `{"replicas":{"r":{"version":null}}}`,
		`{"event":"REPO_CREATED","namespace":"foo","repository":"bar","data":null}`,
		`{"pushedAt":"2019-05-22T01:55:20.471286995+25:00"}`, `{"db_version":1e3}`,
	} {
		for i := range kubehookv1.EventTypes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, typeIndex uint8, contents []byte) {
		typ := kubehookv1.EventType("UNKNOWN")
		if int(typeIndex) < len(kubehookv1.EventTypes) {
			typ = kubehookv1.EventTypes[typeIndex]
		}
		err := payload.Validate(typ, contents)
		err2 := payload.Validate(typ, contents)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Validate is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "contents") && !strings.HasPrefix(err.Error(), "type:") {
				t.Fatalf("error does not name a field: %q", err)
			}
			return
		}
		if payload.ContentsFor(typ) == nil {
			t.Fatalf("Validate accepted unknown type %q", typ)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(contents, &m) != nil || m == nil {
			t.Fatalf("Validate accepted non-object %q", contents)
		}
		if err := json.Unmarshal(contents, payload.ContentsFor(typ)); err != nil {
			t.Fatalf("Validate accepted %q, which does not decode into %T: %v", contents, payload.ContentsFor(typ), err)
		}
		// What validates renders in both formats.
		ev := payload.Event{Type: typ, Contents: contents}
		for _, format := range []kubehookv1.PayloadFormat{kubehookv1.PayloadFormatDTR, kubehookv1.PayloadFormatCloudEvents} {
			if _, _, err := payload.Render(format, ev, "id", "/src"); err != nil {
				t.Fatalf("Render(%s) of valid contents %q: %v", format, contents, err)
			}
		}
	})
}
