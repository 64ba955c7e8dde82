package gatewaytest_test

import (
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
)

// TestStartServesUntilTheTestEnds: the gateway answers while its test
// runs, and its port is closed once that test's cleanup ran.
func TestStartServesUntilTheTestEnds(t *testing.T) {
	trust := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	var url string
	t.Run("inner", func(t *testing.T) {
		g := gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{trust},
			CoAPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
		url = "http://" + g.AdminAddr().String() + admin.PathHealth
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %s", resp.Status)
		}
	})
	c := &http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("the gateway still answers after its test ended: %s", resp.Status)
	}
}
