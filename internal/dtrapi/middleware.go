package dtrapi

import (
	"errors"
	"fmt"
	"net/http"
)

// authenticated wraps every route: it counts the request, applies the
// client's rate limit, reviews the caller's token, then serves with a
// context whose API requests carry that token, and writes the error a
// handler returns.
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

// unauthorized answers 401 with the schemes the API takes.
func unauthorized(w http.ResponseWriter, reason string) {
	w.Header().Add("WWW-Authenticate", `Bearer realm="kubehook"`)
	w.Header().Add("WWW-Authenticate", `Basic realm="kubehook"`)
	writeError(w, &apiError{status: http.StatusUnauthorized, code: CodeNotAuthenticated, message: reason})
}
