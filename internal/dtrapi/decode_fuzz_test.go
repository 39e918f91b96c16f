package dtrapi

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(`{ "endpoint": "https://webhook.site/441b1584-949d-4608-a7f3-f240bdd31019", "key": "maria-testorg/lab-words", "skipTLSVerification": true, "type": "TAG_PULL"}`))
	f.Add([]byte(`{"type":"SCANNER_UPDATE_COMPLETED","endpoint":"http://10.0.0.1/x"}`))
	f.Add([]byte(`{"type":"REPO_EVENT","key":"a/b","endpoint":"https://x"}`))
	f.Add([]byte(`{"type":"TAG_PUSH","key":"a","endpoint":"https://x","tlsCert":"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"}`))
	f.Add([]byte(`{"type":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, aerr := decodeCreate(body)
		if aerr != nil {
			if aerr.status != http.StatusBadRequest || aerr.message == "" {
				t.Fatalf("refusal %d %q: want a 400 with a message", aerr.status, aerr.message)
			}
			return
		}
		// Whatever is accepted is a spec the CRD accepts.
		spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.EventType(req.Type), Key: req.Key, Endpoint: req.Endpoint, TLSCert: req.TLSCert}
		if err := kubehookv1.ValidateSpec(&spec); err != nil {
			t.Fatalf("accepted %q, which the CRD refuses: %v", body, err)
		}
	})
}

func FuzzDecodeTest(f *testing.F) {
	f.Add([]byte(`{"type":"TAG_PUSH","endpoint":"https://www.example.com/"}`))
	f.Add([]byte(`{"type":"TAG_PUSH","endpoint":"https://www.example.com/","key":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, aerr := decodeTest(body)
		if aerr != nil {
			if aerr.status != http.StatusBadRequest {
				t.Fatalf("refusal with status %d", aerr.status)
			}
			return
		}
		if checkType(req.Type) != nil || kubehookv1.ValidateEndpoint(req.Endpoint) != nil {
			t.Fatalf("accepted an invalid test request %q", body)
		}
	})
}

func FuzzTokenFrom(f *testing.F) {
	f.Add("Bearer abc.def.ghi")
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("test-user:abc")))
	f.Add("basic dGVzdC11c2Vy")
	f.Add("Bearer ")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		token, err := tokenFrom(header)
		if err != nil {
			if token != "" {
				t.Fatal("a refused header yielded a token")
			}
			return
		}
		if token == "" {
			t.Fatalf("%q: accepted without a token", header)
		}
		// Round trips: the token sent as Bearer, or as a Basic password, comes back.
		if !strings.ContainsAny(token, " \t") {
			if got, err := tokenFrom("Bearer " + token); err != nil || got != token {
				t.Fatalf("Bearer round trip of %q: %q, %v", token, got, err)
			}
		}
		if got, err := tokenFrom("Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+token))); err != nil || got != token {
			t.Fatalf("Basic round trip of %q: %q, %v", token, got, err)
		}
	})
}

func FuzzKeyOfRepositoryPath(f *testing.F) {
	f.Add("acme/webhooks")
	f.Add("acme/shop/web/webhooks")
	f.Add("webhooks")
	f.Add("/webhooks")
	f.Add("Acme/webhooks")
	f.Fuzz(func(t *testing.T, path string) {
		key, ok := keyOfRepositoryPath(path)
		if !ok {
			return
		}
		if key == "" || key+"/webhooks" != path || checkKey(kubehookv1.TagPush, key) != nil {
			t.Fatalf("%q gave key %q", path, key)
		}
	})
}
