package adminhttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"edgeota/gateway/admin"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// putTrust answers PUT /v1/trust: a signed trust update, refused 422 with
// its reason.
func (s *server) putTrust(w http.ResponseWriter, r *http.Request) {
	signed, err := io.ReadAll(io.LimitReader(r.Body, trust.MaxSize+1))
	if err != nil || len(signed) > trust.MaxSize {
		writeErr(w, http.StatusRequestEntityTooLarge, "size", fmt.Errorf("trust update over %d bytes", trust.MaxSize))
		return
	}
	u, kids, err := s.Gateway.ApplyTrust(signed)
	if errors.Is(err, ErrRefused) {
		writeErr(w, http.StatusUnprocessableEntity, "refused", err)
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "trust", err)
		return
	}
	out := Trust(u)
	for _, k := range kids {
		out.SignedBy = append(out.SignedBy, k.String())
	}
	writeJSON(w, http.StatusOK, out)
}

// getTrust answers GET /v1/trust: 404 before any trust update.
func (s *server) getTrust(w http.ResponseWriter, _ *http.Request) {
	u := s.Gateway.TrustUpdate()
	if u == nil {
		writeErr(w, http.StatusNotFound, "not_found", errors.New("no trust update applied: the gateway uses its configured keys"))
		return
	}
	writeJSON(w, http.StatusOK, Trust(u))
}

// Trust converts a trust update to its admin API form.
func Trust(u *trust.Update) admin.Trust {
	keys := func(ks []trust.Key) []admin.TrustKey {
		out := make([]admin.TrustKey, len(ks))
		for i, k := range ks {
			out[i] = admin.TrustKey{Alg: sign.Algorithm(k.Alg).String(), KID: k.ID().String()}
		}
		return out
	}
	return admin.Trust{Version: u.Version, Issued: u.Issued, ManifestKeys: keys(u.ManifestKeys),
		DeploymentKeys: keys(u.DeploymentKeys), RootKeys: keys(u.RootKeys), Threshold: u.Threshold}
}
