package gatewaytest_test

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"testing"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
)

// A test starts a gateway serving CoAP over DTLS and its admin API on
// loopback ports of the system's choosing, and talks to it; the gateway
// stops when the test ends.
func ExampleStart() {
	t := &testing.T{} // in a test: the test's own *testing.T
	trust := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	g := gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{trust},
		CoAPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	resp, err := http.Get("http://" + g.AdminAddr().String() + "/healthz")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
}
