package adminhttp

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// requireToken wraps the admin API: with a token configured, every
// request must carry it as a bearer token (RFC 6750 section 2.1). The
// token is asked for on every request, so a new one (a reload) holds
// from the next request on. The comparison is of SHA-256 digests in
// constant time, so neither the token's bytes nor its length leak
// through timing.
func (s *server) requireToken(next http.Handler) http.Handler {
	if s.Token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.Token()
		if token == "" {
			next.ServeHTTP(w, r)
			return
		}
		want := sha256.Sum256([]byte(token))
		got, ok := bearerToken(r.Header.Get("Authorization"))
		if ok {
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		reason, challenge := "missing", `Bearer realm="edgeota admin"`
		if ok {
			reason, challenge = "invalid", `Bearer realm="edgeota admin", error="invalid_token"`
		}
		if s.Refused != nil {
			s.Refused.WithLabelValues(reason).Inc()
		}
		s.log.Debug("admin request refused", "reason", reason, "from", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", challenge)
		writeErr(w, http.StatusUnauthorized, "unauthorized", errors.New("the admin API requires a bearer token: Authorization: Bearer <token>"))
	})
}

// bearerToken returns the token of an Authorization header value
// "Bearer <token>" (the scheme is case-insensitive).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
