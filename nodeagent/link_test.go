package nodeagent

import (
	"errors"
	"testing"
)

func TestCheckGateway(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, tc := range []struct {
		url    string
		psk    []byte
		addr   string
		secure bool
		ok     bool
	}{
		{"coaps://gw.example:7000", key, "gw.example:7000", true, true},
		{"coaps://10.0.0.1", key, "10.0.0.1:5684", true, true},
		{"coap://10.0.0.1", nil, "10.0.0.1:5683", false, true},
		{"coaps://10.0.0.1", nil, "", false, false},      // DTLS needs the key
		{"coap://10.0.0.1", key, "", false, false},       // a key on plain CoAP is a mistake
		{"http://10.0.0.1", nil, "", false, false},       // not CoAP
		{"coaps://10.0.0.1/path", key, "", false, false}, // no path
		{"coaps://", key, "", false, false},              // no host
	} {
		addr, secure, err := checkGateway(Config{Gateway: tc.url, PSK: tc.psk})
		if tc.ok != (err == nil) || addr != tc.addr || secure != tc.secure {
			t.Errorf("%s (psk %v): %q %v %v", tc.url, tc.psk != nil, addr, secure, err)
		}
		if err != nil && !errors.Is(err, ErrScheme) {
			t.Errorf("%s: error %v is not ErrScheme", tc.url, err)
		}
	}
}
