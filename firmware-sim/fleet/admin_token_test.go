package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/fleet"
	"edgeota/firmware-sim/scenario"
	"edgeota/gateway/admin"
)

// TestExternalAdminToken: against a running gateway the fleet sends its
// admin requests with Options.Admin, and so with that client's token. The fake gateway lets the
// right token through to a /healthz whose time scale differs from the
// scenario's, so the run stops there, before any node or broker.
func TestExternalAdminToken(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, `{"status": "ok", "gateway_id": "gw-1", "time_scale": 7}`)
	}))
	defer srv.Close()
	sc, err := scenario.Parse([]byte(`
name: token
time_scale: 60
duration: 1m
fleet: [{count: 1}]
models: [{name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 1024}]
initial: v1
expect: [{kind: all-run, model: v1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, want string
	}{
		{"no token", "", "401"},
		{"wrong token", strings.Repeat("0", 32), "401"},
		{"right token", token, "runs time scale 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			api, err := admin.NewClient(srv.URL, admin.WithToken(tt.token))
			if err != nil {
				t.Fatal(err)
			}
			_, err = fleet.Run(ctx, sc, fleet.Options{Gateway: "coap://127.0.0.1:5683", Admin: api, MQTT: "tcp://127.0.0.1:1"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
