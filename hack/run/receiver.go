package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/httpserve"
)

// receiver is the sample endpoint of `make run`: it prints every delivery
// it gets on /hooks/<subscription name>, and checks its signature with the
// subscription's signing Secret, as a real receiver would.
type receiver struct {
	addr string
	c    client.Client
}

func (rv *receiver) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", rv.addr)
	if err != nil {
		return fmt.Errorf("sample receiver: %w", err)
	}
	srv := &http.Server{Handler: rv, ReadHeaderTimeout: 5 * time.Second}
	if err := httpserve.Serve(ctx, srv, ln, 5*time.Second); err != nil {
		return fmt.Errorf("sample receiver: %w", err)
	}
	return nil
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/hooks/")
	if r.Method != http.MethodPost || !ok || name == "" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ev struct {
		Type     string `json:"type"`
		Contents struct {
			Namespace  string `json:"namespace"`
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
			Digest     string `json:"digest"`
		} `json:"contents"`
		// CloudEvents carry the repository in subject.
		Subject string `json:"subject"`
	}
	_ = json.Unmarshal(body, &ev)
	what := ev.Contents.Namespace
	if ev.Contents.Repository != "" {
		what += "/" + ev.Contents.Repository
	}
	if ev.Contents.Tag != "" {
		what += ":" + ev.Contents.Tag
	} else if ev.Contents.Digest != "" {
		what += "@" + ev.Contents.Digest
	}
	if what == "" {
		what = ev.Subject
	}
	key, sig := rv.inspect(r.Context(), name, body, r.Header)
	fmt.Printf("receiver: %-16s %-28s -> /hooks/%s (key %q)  webhook-id=%s  signature: %s\n",
		ev.Type, what, name, key, r.Header.Get("webhook-id"), sig)
	w.WriteHeader(http.StatusNoContent)
}

// inspect finds the subscription named like the path, and checks the
// signature against its signing Secret.
func (rv *receiver) inspect(ctx context.Context, name string, body []byte, h http.Header) (key, signature string) {
	var subs kubehookv1.WebhookSubscriptionList
	if err := rv.c.List(ctx, &subs); err != nil {
		return "?", "not checked: " + err.Error()
	}
	for _, s := range subs.Items {
		if s.Name == name {
			return s.Spec.Key, rv.verify(ctx, &s, body, h)
		}
	}
	return "?", "not checked: no subscription " + name
}

// verify checks the signature against the subscription's signing Secret.
func (rv *receiver) verify(ctx context.Context, s *kubehookv1.WebhookSubscription, body []byte, h http.Header) string {
	if h.Get("webhook-signature") == "" {
		return "none (no signingSecretRef)"
	}
	if s.Spec.SigningSecretRef == nil {
		return "INVALID: signed, but the subscription has no signing Secret"
	}
	var secret corev1.Secret
	if err := rv.c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Spec.SigningSecretRef.Name}, &secret); err != nil {
		return "not checked: " + err.Error()
	}
	keys := make([]string, 0, len(secret.Data))
	for k := range secret.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		wh, err := standardwebhooks.NewWebhook(strings.TrimSpace(string(secret.Data[k])))
		if err != nil {
			continue
		}
		if wh.Verify(body, h) == nil {
			return fmt.Sprintf("verified (Secret %s, key %s)", secret.Name, k)
		}
	}
	return "INVALID"
}
