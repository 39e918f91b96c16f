package dtrapi

import (
	"fmt"
	"net/http"
	"strings"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Routes. POST /api/v0/webhooks/test is served by the {id} route.
const (
	PathWebhooks     = "/api/v0/webhooks"
	PathRepositories = "/api/v0/repositories/"
)

// routes maps each path to its handler, wrapped in authenticated; any
// other path is a DTR-shaped 404.
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

// serveWebhooks: GET lists, POST creates.
func (s *Server) serveWebhooks(w http.ResponseWriter, r *http.Request) *apiError {
	switch r.Method {
	case http.MethodGet:
		return s.serveList(w, r, nil)
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
	return s.serveList(w, r, &key)
}

// serveList answers a GET of a listing: the subscriptions the caller may
// list, to key when key is set.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, key *string) *apiError {
	hooks, aerr := s.list(r.Context(), key)
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
