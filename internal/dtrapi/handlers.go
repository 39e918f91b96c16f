package dtrapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Routes. POST /api/v0/webhooks/test is served by the {id} route.
const (
	PathWebhooks     = "/api/v0/webhooks"
	PathRepositories = "/api/v0/repositories/"
)

// namespaceListConcurrency bounds the lists (and access reviews) a caller
// without cluster-wide rights costs at once, and maxNamespaceLists the
// lists of one request.
const (
	namespaceListConcurrency = 8
	maxNamespaceLists        = 64
)

// CodeTooManyNamespaces: a listing would cost more than maxNamespaceLists
// lists.
const CodeTooManyNamespaces = "TOO_MANY_NAMESPACES"

// keyField is the WebhookSubscription field selector on spec.key (a
// selectable field of the CRD).
const keyField = "spec.key"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PathWebhooks, s.authenticated("webhooks", s.serveWebhooks))
	mux.Handle(PathWebhooks+"/{id}", s.authenticated("webhook", s.serveWebhook))
	mux.Handle(PathRepositories+"{path...}", s.authenticated("repository_webhooks", s.serveRepositoryWebhooks))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, code: CodeNotFound, message: fmt.Sprintf("no such API: %s", r.URL.Path)})
	}))
	return mux
}

// authenticated reviews the caller's token, then serves with a context
// whose API requests carry it.
func (s *Server) authenticated(route string, next func(http.ResponseWriter, *http.Request) *apiError) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() { requestsTotal.WithLabelValues(route, methodLabel(r.Method), fmt.Sprint(rec.status)).Inc() }()
		// Before the token review: a flood costs the API server nothing.
		if s.limits.limited(rec, r) {
			return
		}

		token, err := tokenFrom(r.Header.Get("Authorization"))
		if err != nil {
			unauthorized(rec, err.Error())
			return
		}
		u, err := s.reviewer.review(r.Context(), token)
		var unauth *errUnauthenticated
		switch {
		case errors.As(err, &unauth):
			unauthorized(rec, unauth.reason)
			return
		case err != nil:
			s.opts.Log.Error(err, "token review failed")
			writeError(rec, unavailable(err))
			return
		}
		r = r.WithContext(withCaller(r.Context(), u))
		if aerr := next(rec, r); aerr != nil {
			writeError(rec, aerr)
		}
	})
}

// methodLabel bounds the method label: the method is the caller's choice.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

func unauthorized(w http.ResponseWriter, reason string) {
	w.Header().Add("WWW-Authenticate", `Bearer realm="kubehook"`)
	w.Header().Add("WWW-Authenticate", `Basic realm="kubehook"`)
	writeError(w, &apiError{status: http.StatusUnauthorized, code: CodeNotAuthenticated, message: reason})
}

// serveWebhooks: GET lists, POST creates.
func (s *Server) serveWebhooks(w http.ResponseWriter, r *http.Request) *apiError {
	switch r.Method {
	case http.MethodGet:
		hooks, aerr := s.list(r.Context(), nil)
		if aerr != nil {
			return aerr
		}
		writeJSON(w, http.StatusOK, hooks)
		return nil
	case http.MethodPost:
		return s.create(w, r)
	}
	return methodNotAllowed(w, http.MethodGet, http.MethodPost)
}

// serveWebhook: GET and DELETE /api/v0/webhooks/{id}; POST .../test.
func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if id == "test" {
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, http.MethodPost)
		}
		return s.test(w, r)
	}
	switch r.Method {
	case http.MethodGet:
		sub, aerr := s.lookup(r.Context(), id)
		if aerr != nil {
			return aerr
		}
		writeJSON(w, http.StatusOK, webhookFor(sub))
		return nil
	case http.MethodDelete:
		return s.delete(w, r, id)
	}
	return methodNotAllowed(w, http.MethodGet, http.MethodDelete)
}

// serveRepositoryWebhooks: GET /api/v0/repositories/{namespace}/webhooks and
// /api/v0/repositories/{namespace}/{repository}/webhooks.
func (s *Server) serveRepositoryWebhooks(w http.ResponseWriter, r *http.Request) *apiError {
	key, ok := keyOfRepositoryPath(r.PathValue("path"))
	if !ok {
		return &apiError{status: http.StatusNotFound, code: CodeNotFound,
			message: fmt.Sprintf("no such API: %s (use /api/v0/repositories/{namespace}[/{repository}]/webhooks)", r.URL.Path)}
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	hooks, aerr := s.list(r.Context(), &key)
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, hooks)
	return nil
}

// keyOfRepositoryPath turns "ns/webhooks" or "ns/repo/.../webhooks" into the
// key "ns" or "ns/repo/...".
func keyOfRepositoryPath(path string) (string, bool) {
	key, ok := strings.CutSuffix(path, "/webhooks")
	if !ok || key == "" {
		return "", false
	}
	if checkKey(kubehookv1.TagPush, key) != nil {
		return "", false
	}
	return key, true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) *apiError {
	body, aerr := readBody(w, r)
	if aerr != nil {
		return aerr
	}
	req, aerr := decodeCreate(body)
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

// awaitCached waits (briefly) until kubehook's cache holds a subscription
// just created, so a script's next call, GET /api/v0/webhooks/{id}, finds it.
func (s *Server) awaitCached(ctx context.Context, sub *kubehookv1.WebhookSubscription) {
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		var cached kubehookv1.WebhookSubscriptionList
		err := s.opts.Cache.List(ctx, &cached, client.MatchingFields{uidIndex: string(sub.UID)})
		return err == nil && len(cached.Items) == 1, nil
	})
}

// lookup finds the subscription with UID id, read as the caller: 404 when
// it does not exist or the caller may not read it.
func (s *Server) lookup(ctx context.Context, id string) (*kubehookv1.WebhookSubscription, *apiError) {
	var cached kubehookv1.WebhookSubscriptionList
	if err := s.opts.Cache.List(ctx, &cached, client.MatchingFields{uidIndex: id}); err != nil {
		return nil, unavailable(err)
	}
	if len(cached.Items) != 1 {
		return nil, noSuchWebhook(id)
	}
	sub := &kubehookv1.WebhookSubscription{}
	if err := s.as.Get(ctx, client.ObjectKeyFromObject(&cached.Items[0]), sub); err != nil {
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

// list returns the subscriptions the caller may list (with the given key
// when key is set), oldest first. A caller who may list across the cluster
// gets one list; others get the namespaces holding subscriptions that they
// may list, each read as them.
func (s *Server) list(ctx context.Context, key *string) ([]Webhook, *apiError) {
	var opts []client.ListOption
	if key != nil {
		opts = append(opts, client.MatchingFields{keyField: *key})
	}
	var all kubehookv1.WebhookSubscriptionList
	err := s.as.List(ctx, &all, opts...)
	switch {
	case err == nil:
		return sorted(all.Items), nil
	case !apierrors.IsForbidden(err):
		return nil, fromAPI(err, "listing subscriptions")
	}

	namespaces, aerr := s.namespacesHolding(ctx, key)
	if aerr != nil {
		return nil, aerr
	}
	if len(namespaces) > maxNamespaceLists {
		// Not how many: that is not every caller's business.
		return nil, &apiError{status: http.StatusBadRequest, code: CodeTooManyNamespaces,
			message: fmt.Sprintf("these subscriptions live in more namespaces than the %d one request lists for a caller who may not list webhooksubscriptions across the cluster: list one repository's (GET %s{namespace}/{repository}/webhooks), or ask for list rights across the cluster",
				maxNamespaceLists, PathRepositories)}
	}
	// One list per namespace, a few at a time.
	lists := make([][]kubehookv1.WebhookSubscription, len(namespaces))
	allowed := make([]bool, len(namespaces))
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(namespaceListConcurrency)
	for i, ns := range namespaces {
		eg.Go(func() error {
			var l kubehookv1.WebhookSubscriptionList
			err := s.as.List(egctx, &l, append([]client.ListOption{client.InNamespace(ns)}, opts...)...)
			if apierrors.IsForbidden(err) {
				return nil
			}
			if err != nil {
				return err
			}
			lists[i], allowed[i] = l.Items, true
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, fromAPI(err, "listing subscriptions")
	}
	var items []kubehookv1.WebhookSubscription
	listed := false
	for i := range lists {
		items = append(items, lists[i]...)
		listed = listed || allowed[i]
	}
	if !listed {
		if aerr := s.mayListSomewhere(ctx); aerr != nil {
			return nil, aerr
		}
	}
	return sorted(items), nil
}

// mayListSomewhere refuses a caller who may list subscriptions in no
// namespace. When that is not known (a right, if any, only beyond the
// namespaces one request asks about), the caller gets the empty listing:
// it tells nothing.
func (s *Server) mayListSomewhere(ctx context.Context) *apiError {
	verdict, err := s.access.inSomeNamespace(ctx, "list")
	if err != nil {
		return unavailable(err)
	}
	if verdict == nowhere {
		u, _ := callerFrom(ctx)
		return &apiError{status: http.StatusForbidden, code: CodeNotAuthorized,
			message: fmt.Sprintf("user %q may not list webhooksubscriptions in any namespace", u.user.Username)}
	}
	return nil
}

// namespacesHolding returns the namespaces that hold subscriptions (to key,
// when set), from kubehook's cache.
func (s *Server) namespacesHolding(ctx context.Context, key *string) ([]string, *apiError) {
	var cached kubehookv1.WebhookSubscriptionList
	if err := s.opts.Cache.List(ctx, &cached); err != nil {
		return nil, unavailable(err)
	}
	seen := map[string]bool{}
	var out []string
	for i := range cached.Items {
		sub := &cached.Items[i]
		if (key == nil || sub.Spec.Key == *key) && !seen[sub.Namespace] {
			seen[sub.Namespace] = true
			out = append(out, sub.Namespace)
		}
	}
	slices.Sort(out)
	return out, nil
}

func sorted(items []kubehookv1.WebhookSubscription) []Webhook {
	hooks := make([]Webhook, 0, len(items))
	for i := range items {
		hooks = append(hooks, webhookFor(&items[i]))
	}
	slices.SortFunc(hooks, func(a, b Webhook) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return hooks
}

// readBody checks the media type and reads at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType,
				message: fmt.Sprintf("Content-Type %q is not JSON: send application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: CodeRequestTooLarge,
				message: fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON, message: "reading the body: " + err.Error()}
	}
	return body, nil
}

// fromAPI maps an API server error to an answer, keeping its reason.
func fromAPI(err error, doing string) *apiError {
	msg := fmt.Sprintf("%s: %s", doing, apiMessage(err))
	switch {
	case apierrors.IsForbidden(err):
		return &apiError{status: http.StatusForbidden, code: CodeNotAuthorized, message: msg}
	case apierrors.IsNotFound(err):
		return &apiError{status: http.StatusNotFound, code: CodeNotFound, message: msg}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		e := &apiError{status: http.StatusBadRequest, code: CodeInvalidParameters, message: msg}
		if f := invalidField(err); f != "" {
			e.detail = map[string]any{"field": f}
		}
		return e
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return &apiError{status: http.StatusConflict, code: CodeInvalidParameters, message: msg}
	case apierrors.IsInternalError(err):
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: msg}
	}
	return unavailable(err)
}

func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

// invalidField names the DTR field of the first invalid spec field.
func invalidField(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return ""
	}
	for _, c := range status.Status().Details.Causes {
		if f, ok := strings.CutPrefix(c.Field, "spec."); ok {
			return f
		}
	}
	return ""
}

func unavailable(err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
		message: "the Kubernetes API is not available: " + err.Error()}
}

func noSuchWebhook(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeNoSuchWebhook, message: fmt.Sprintf("no webhook subscription with id %q", id)}
}

func methodNotAllowed(w http.ResponseWriter, allowed ...string) *apiError {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
		message: "method not allowed: use " + strings.Join(allowed, " or ")}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, e.body())
}

// statusRecorder remembers the answer's status for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
