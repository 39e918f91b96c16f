package dtrapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// create serves POST /api/v0/webhooks: a WebhookSubscription created as the
// caller, in the namespace place chooses, answered once kubehook's cache
// holds it.
func (s *Server) create(w http.ResponseWriter, r *http.Request) *apiError {
	req, aerr := readRequest(w, r, decodeCreate)
	if aerr != nil {
		return aerr
	}
	ctx := r.Context()
	ns, aerr := s.place(ctx, req.Key, r.URL.Query().Get("namespace"))
	if aerr != nil {
		return aerr
	}
	u, _ := callerFrom(ctx)
	sub := &kubehookv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    ns,
			GenerateName: strings.ToLower(strings.ReplaceAll(req.Type, "_", "-")) + "-",
			Annotations: map[string]string{
				kubehookv1.AuthorIDAnnotation: u.authorID(),
				kubehookv1.AuthorAnnotation:   u.user.Username,
			},
		},
		Spec: kubehookv1.WebhookSubscriptionSpec{
			Type:                kubehookv1.EventType(req.Type),
			Key:                 req.Key,
			Endpoint:            req.Endpoint,
			SkipTLSVerification: req.SkipTLSVerification,
			TLSCert:             req.TLSCert,
		},
	}
	if err := s.as.Create(ctx, sub); err != nil {
		return fromAPI(err, "creating the subscription")
	}
	s.awaitCached(ctx, sub)
	s.opts.Log.Info("subscription created through the DTR API", "user", u.user.Username, "subscription", client.ObjectKeyFromObject(sub), "type", req.Type, "key", req.Key)
	writeJSON(w, http.StatusCreated, webhookFor(sub))
	return nil
}

// awaitCached waits (briefly) until kubehook's cache holds a subscription
// just created, so a script's next call, GET /api/v0/webhooks/{id}, finds it.
func (s *Server) awaitCached(ctx context.Context, sub *kubehookv1.WebhookSubscription) {
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		_, ok, err := s.opts.UIDs.Name(ctx, sub.UID)
		return ok, err
	})
}

// delete serves DELETE /api/v0/webhooks/{id}: the subscription lookup
// finds is deleted as the caller, with its UID as a precondition, so that a
// newer subscription of the same name is never the one deleted.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, id string) *apiError {
	ctx := r.Context()
	sub, aerr := s.lookup(ctx, id)
	if aerr != nil {
		return aerr
	}
	uid := sub.UID
	if err := s.as.Delete(ctx, sub, client.Preconditions{UID: &uid}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return noSuchWebhook(id)
		}
		return fromAPI(err, "deleting the subscription")
	}
	u, _ := callerFrom(ctx)
	s.opts.Log.Info("subscription deleted through the DTR API", "user", u.user.Username, "subscription", client.ObjectKeyFromObject(sub))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lookup finds the subscription with UID id, read as the caller: 404 when
// it does not exist or the caller may not read it. GET and DELETE of
// /api/v0/webhooks/{id} use it.
func (s *Server) lookup(ctx context.Context, id string) (*kubehookv1.WebhookSubscription, *apiError) {
	name, ok, err := s.opts.UIDs.Name(ctx, types.UID(id))
	if err != nil {
		return nil, unavailable(err)
	}
	if !ok {
		return nil, noSuchWebhook(id)
	}
	sub := &kubehookv1.WebhookSubscription{}
	if err := s.as.Get(ctx, name, sub); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, noSuchWebhook(id)
		}
		return nil, fromAPI(err, "reading the subscription")
	}
	if string(sub.UID) != id {
		return nil, noSuchWebhook(id)
	}
	return sub, nil
}
