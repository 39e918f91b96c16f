package main

import (
	"context"
	"encoding/json"
	"errors"
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
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
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
	fmt.Printf("receiver: %-16s %-28s -> /hooks/%s  webhook-id=%s  signature: %s\n",
		ev.Type, what, name, r.Header.Get("webhook-id"), rv.verify(r.Context(), name, body, r.Header))
	w.WriteHeader(http.StatusNoContent)
}

// verify checks the signature against the signing Secret of the
// subscription named like the path.
func (rv *receiver) verify(ctx context.Context, name string, body []byte, h http.Header) string {
	if h.Get("webhook-signature") == "" {
		return "none (no signingSecretRef)"
	}
	var subs kubehookv1.WebhookSubscriptionList
	if err := rv.c.List(ctx, &subs); err != nil {
		return "not checked: " + err.Error()
	}
	for _, s := range subs.Items {
		if s.Name != name || s.Spec.SigningSecretRef == nil {
			continue
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
	return "not checked: no subscription " + name + " with a signing Secret"
}
