package sources

import (
	"context"
	"strings"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

const harborScanDigest = "sha256:9b2a5c1e07d44f3c8e6a1d0b7f3e2c19a4d8b6e5f0c7a3d2e1b9f8c6a5d4e3f2"

func TestHarborMapping(t *testing.T) {
	opts := MapOptions{RegistryHost: testRegistryHost} // resource_url's host wins
	cases := []struct {
		name string
		want []wantEvent
	}{{
		name: "push",
		want: []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{
				"namespace": "acme", "repository": "web", "tag": "1.4.2", "digest": webDigest,
				"imageName": "harbor.example.com/acme/web:1.4.2", "os": "", "architecture": "",
				"author": "robot$acme+ci", "pushedAt": "2025-11-27T16:54:10Z",
			}},
			{kubehookv1.ManifestPush, "acme/web", map[string]any{
				"digest": webDigest, "imageName": "harbor.example.com/acme/web@" + webDigest, "author": "robot$acme+ci",
			}},
		},
	}, {
		name: "pull",
		want: []wantEvent{
			{kubehookv1.TagPull, "acme/web", map[string]any{"tag": "1.4.2", "author": "jdoe", "pulledAt": "2025-11-27T16:55:12Z"}},
			{kubehookv1.ManifestPull, "acme/web", map[string]any{"digest": webDigest}},
		},
	}, {
		// Pulled by digest: Harbor puts the digest in tag.
		name: "pull-digest",
		want: []wantEvent{
			{kubehookv1.ManifestPull, "acme/web", map[string]any{
				"digest": webDigest, "imageName": "harbor.example.com/acme/web@" + webDigest,
			}},
		},
	}, {
		name: "delete",
		want: []wantEvent{
			{kubehookv1.TagDelete, "acme/web", map[string]any{"tag": "1.4.2", "digest": webDigest, "author": "admin"}},
			{kubehookv1.ManifestDelete, "acme/web", map[string]any{"digest": webDigest, "deletedAt": "2025-11-27T17:05:01Z"}},
		},
	}, {
		// Critical 2 + High 5, Medium 11, Low 7; Unknown 1 is in no band.
		name: "scanning-completed",
		want: []wantEvent{
			{kubehookv1.ScanCompleted, "acme/web", map[string]any{
				"namespace": "acme", "repository": "web", "tag": "1.4.2",
				"imageName": "harbor.example.com/acme/web:1.4.2",
				"scanSummary": map[string]any{
					"namespace": "acme", "repository": "web", "tag": "1.4.2",
					"critical": 7.0, "major": 11.0, "minor": 7.0, "last_scan_status": 6.0,
					"check_completed_at": "2025-11-27T16:54:32Z",
				},
			}},
		},
	}, {
		name: "scanning-failed",
		want: []wantEvent{
			{kubehookv1.ScanFailed, "acme/team/api", map[string]any{
				"namespace": "acme", "repository": "team/api", "tag": "2.0.0-rc.1",
				"imageName": "harbor.example.com/acme/team/api:2.0.0-rc.1",
				"error":     "vulnerability scan failed (status Error, scanner Trivy v0.58.1)",
			}},
		},
	}, {
		// ChartMuseum (Harbor 2.7 and older); the chart URL is not an
		// image's, and chart events have no imageName anyway.
		name: "upload-chart",
		want: []wantEvent{
			{kubehookv1.ChartPush, "acme/webapp", map[string]any{
				"namespace": "acme", "repository": "webapp", "chartName": "webapp", "chartVersion": "0.3.1",
				"digest": "", "author": "jdoe", "pushedAt": "2025-11-27T16:56:40Z",
			}},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Harbor(context.Background(), testdataFile(t, "harbor", tc.name), opts)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, got, tc.want)
			checkGolden(t, "harbor-"+tc.name, got)
		})
	}
}

func TestHarborIgnoredTypes(t *testing.T) {
	for _, body := range []string{
		string(testdataFile(t, "harbor", "quota-exceed")),
		string(testdataFile(t, "harbor", "scanning-completed-sbom")),
		`{"type":"REPLICATION","occur_at":1764262700,"operator":"admin","event_data":{"replication":{"harbor_hostname":"harbor.example.com","job_status":"Success"}}}`,
		`{"type":"TAG_RETENTION","occur_at":1764262700,"event_data":{"retention":{"total":3,"retained":1}}}`,
		`{"type":"SCANNING_STOPPED","occur_at":1764262700,"event_data":{"repository":{"repo_full_name":"acme/web"}}}`,
		// An unknown type is not checked further.
		`{"type":"ARTIFACT_LABELED","event_data":"whatever"}`,
	} {
		got, err := Harbor(context.Background(), []byte(body), MapOptions{})
		if err != nil || len(got) != 0 {
			t.Errorf("%.60s...: got %d events, err %v; want none", body, len(got), err)
		}
	}
}

// harborBody builds a Harbor payload of type typ with one resource.
func harborBody(typ, resource string) []byte {
	return []byte(`{"type":"` + typ + `","occur_at":1764262450,"operator":"jdoe","event_data":{"resources":[` + resource +
		`],"repository":{"name":"web","namespace":"acme","repo_full_name":"acme/web","repo_type":"private"}}}`)
}

func TestHarborDetails(t *testing.T) {
	ctx := context.Background()
	t.Run("registry host when resource_url has none", func(t *testing.T) {
		got, err := Harbor(ctx, harborBody("PUSH_ARTIFACT", `{"digest":"`+webDigest+`","tag":"1.4.2"}`), MapOptions{RegistryHost: "r.example"})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"imageName": "r.example/acme/web:1.4.2"}},
			{kubehookv1.ManifestPush, "acme/web", map[string]any{"imageName": "r.example/acme/web@" + webDigest}},
		})
	})
	t.Run("resource_url with a scheme and a port", func(t *testing.T) {
		got, err := Harbor(ctx, harborBody("PUSH_ARTIFACT", `{"digest":"`+webDigest+`","tag":"1.4.2","resource_url":"https://harbor.example.com:8443/acme/web:1.4.2"}`), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"imageName": "harbor.example.com:8443/acme/web:1.4.2"}},
			{kubehookv1.ManifestPush, "acme/web", nil},
		})
	})
	t.Run("repository from namespace and name", func(t *testing.T) {
		body := strings.Replace(string(harborBody("DELETE_ARTIFACT", `{"digest":"`+webDigest+`"}`)), `"repo_full_name":"acme/web",`, ``, 1)
		got, err := Harbor(ctx, []byte(body), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.ManifestDelete, "acme/web", map[string]any{"imageName": "acme/web@" + webDigest}}})
	})
	t.Run("several resources", func(t *testing.T) {
		res := `{"digest":"` + webDigest + `","tag":"1.4.2"},{"digest":"` + harborScanDigest + `","tag":"latest"}`
		got, err := Harbor(ctx, harborBody("PULL_ARTIFACT", res), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPull, "acme/web", map[string]any{"tag": "1.4.2"}},
			{kubehookv1.ManifestPull, "acme/web", map[string]any{"digest": webDigest}},
			{kubehookv1.TagPull, "acme/web", map[string]any{"tag": "latest"}},
			{kubehookv1.ManifestPull, "acme/web", map[string]any{"digest": harborScanDigest}},
		})
	})
	t.Run("scan report not ready: scanned, not checked", func(t *testing.T) {
		got, err := Harbor(ctx, harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","tag":"1.4.2","scan_overview":{}}`), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.ScanCompleted, "acme/web", map[string]any{"scanSummary": map[string]any{
			"namespace": "acme", "repository": "web", "tag": "1.4.2", "critical": 0.0, "major": 0.0, "minor": 0.0,
			"last_scan_status": 4.0, "check_completed_at": "2025-11-27T16:54:10Z",
		}}}})
	})
	t.Run("scan of an untagged artifact, native report, Negligible is minor", func(t *testing.T) {
		res := `{"digest":"` + webDigest + `","tag":"` + webDigest + `","scan_overview":{
		 "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0":{"scan_status":"Success",
		  "summary":{"total":4,"summary":{"high":1,"Negligible":2,"Low":1}},"end_time":"2025-11-27T16:54:31.5Z"},
		 "application/x-other":{"scan_status":"Error"}}}`
		got, err := Harbor(ctx, harborBody("SCANNING_COMPLETED", res), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.ScanCompleted, "acme/web", map[string]any{
			"tag": "", "imageName": "acme/web@" + webDigest,
			"scanSummary": map[string]any{"namespace": "acme", "repository": "web", "tag": "",
				"critical": 1.0, "major": 0.0, "minor": 3.0, "last_scan_status": 6.0, "check_completed_at": "2025-11-27T16:54:31.5Z"},
		}}})
	})
	t.Run("scan failed without a report", func(t *testing.T) {
		got, err := Harbor(ctx, harborBody("SCANNING_FAILED", `{"digest":"`+webDigest+`","tag":"1.4.2"}`), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.ScanFailed, "acme/web", map[string]any{"error": "vulnerability scan failed"}}})
	})
}

func TestHarborInputErrors(t *testing.T) {
	push := func(resource string) string { return string(harborBody("PUSH_ARTIFACT", resource)) }
	okRes := `{"digest":"` + webDigest + `","tag":"1.4.2"}`
	cases := []struct {
		name, body, field, msg string
	}{
		{"empty", "", "", "empty body"},
		{"not JSON", "type=PUSH_ARTIFACT", "", "malformed JSON"},
		{"array", `[{"type":"PUSH_ARTIFACT"}]`, "", "JSON object"},
		{"no type", `{"occur_at":1}`, "type", "required"},
		{"empty type", `{"type":""}`, "type", "required"},
		{"type not a string", `{"type":3}`, "type", "string"},
		{"no occur_at", strings.Replace(push(okRes), `"occur_at":1764262450,`, ``, 1), "occur_at", "required"},
		{"occur_at a string", strings.Replace(push(okRes), `1764262450`, `"1764262450"`, 1), "occur_at", "must be a JSON number"},
		{"occur_at too late", strings.Replace(push(okRes), `1764262450`, `253402300800`, 1), "occur_at", "out of range"},
		{"no event_data", `{"type":"PUSH_ARTIFACT","occur_at":1764262450}`, "event_data", "required"},
		{"no repository", `{"type":"PUSH_ARTIFACT","occur_at":1764262450,"event_data":{"resources":[` + okRes + `]}}`, "event_data.repository", "required"},
		{"no repository name", strings.NewReplacer(`"repo_full_name":"acme/web",`, ``, `"name":"web",`, ``).Replace(push(okRes)), "event_data.repository.repo_full_name", "required"},
		{"bad repository name", strings.Replace(push(okRes), `"acme/web"`, `"acme//web"`, 1), "event_data.repository.repo_full_name", "invalid repository name"},
		{"no resources", strings.Replace(push(okRes), okRes, ``, 1), "event_data.resources", "required"},
		{"null resource", push(`null`), "event_data.resources[0]", "object"},
		{"no digest", push(`{"tag":"1.4.2"}`), "event_data.resources[0].digest", "required"},
		{"bad digest", push(`{"digest":"sha256:123","tag":"1.4.2"}`), "event_data.resources[0].digest", "invalid digest"},
		{"bad tag", push(`{"digest":"` + webDigest + `","tag":".hidden"}`), "event_data.resources[0].tag", "invalid tag"},
		{"tag not a string", push(`{"digest":"` + webDigest + `","tag":1}`), "event_data.resources[0].tag", "string"},
		{"chart without version", string(harborBody("UPLOAD_CHART", `{"resource_url":"https://harbor.example.com/chartrepo/acme/charts/web-.tgz"}`)), "event_data.resources[0].tag", "required"},
		{"scan without tag or digest", string(harborBody("SCANNING_FAILED", `{}`)), "event_data.resources[0].digest", "required"},
		{"scan summary not an object", string(harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","scan_overview":{"application/vnd.security.vulnerability.report; version=1.1":{"summary":[1]}}}`)),
			`event_data.resources[0].scan_overview["application/vnd.security.vulnerability.report; version=1.1"].summary`, "object"},
		{"scan counts not numbers", string(harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","scan_overview":{"r":{"summary":{"summary":{"High":"many"}}}}}`)),
			`event_data.resources[0].scan_overview["r"].summary.summary.High`, "number"},
		{"negative count", string(harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","scan_overview":{"r":{"summary":{"summary":{"High":-1}}}}}`)),
			`event_data.resources[0].scan_overview["r"].summary.summary.High`, "negative"},
		{"end_time after 9999 in UTC", string(harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","scan_overview":{"r":{"end_time":"9999-12-31T23:00:00-10:00"}}}`)),
			`event_data.resources[0].scan_overview["r"].end_time`, "out of range"},
		{"bad end_time", string(harborBody("SCANNING_COMPLETED", `{"digest":"`+webDigest+`","scan_overview":{"r":{"end_time":"today"}}}`)),
			`event_data.resources[0].scan_overview["r"].end_time`, "RFC 3339"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Harbor(context.Background(), []byte(tc.body), MapOptions{})
			ie, ok := isInputError(err)
			if !ok {
				t.Fatalf("got %d events, err %v (%T); want an *InputError", len(got), err, err)
			}
			if ie.Field != tc.field || !strings.Contains(ie.Message, tc.msg) {
				t.Errorf("err = %q (field %q), want field %q and a message with %q", err, ie.Field, tc.field, tc.msg)
			}
		})
	}
}
