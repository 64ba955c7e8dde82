package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"edgeota/gateway"
)

// TestGatewayErrorsGetTheirFlag: the gateway library names no flag; the
// command adds the one that answers each of its sentinel errors.
func TestGatewayErrorsGetTheirFlag(t *testing.T) {
	other := errors.New("gateway: something else")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no CoAP service", fmt.Errorf("gateway: %w", gateway.ErrNoCoAP), "--insecure-udp"},
		{"no deployment keys", fmt.Errorf("gateway: the database holds rollouts: %w", gateway.ErrNoDeploymentKeys), "--deploy-trust"},
		{"admin beyond loopback", fmt.Errorf("gateway: %w (0.0.0.0:8080)", gateway.ErrAdminNoToken), "--admin-token-file"},
		{"short admin token", fmt.Errorf("gateway: %w (6 characters, want at least 16)", gateway.ErrAdminTokenShort), "--admin-token-file"},
		{"anything else", other, other.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := withFlagHint(tc.err)
			if !errors.Is(got, tc.err) || !strings.Contains(got.Error(), tc.want) {
				t.Fatalf("%v: want it wrapped, naming %q", got, tc.want)
			}
			if strings.Contains(tc.err.Error(), "--") {
				t.Fatalf("the library's error names a flag: %v", tc.err)
			}
		})
	}
}
