package provision

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

func TestSealOpen(t *testing.T) {
	s, err := Seal(factorySecret, "node-0001", 7, testPSK)
	if err != nil {
		t.Fatal(err)
	}
	tampered := s
	tampered.Ciphertext = append([]byte(nil), s.Ciphertext...)
	tampered.Ciphertext[0] ^= 1
	otherNonce := s
	otherNonce.Nonce[0] ^= 1
	tests := []struct {
		name   string
		secret []byte
		node   string
		serial uint64
		sealed SealedPSK
		want   error
	}{
		{"ok", factorySecret, "node-0001", 7, s, nil},
		{"other secret", seq(0x11, 32), "node-0001", 7, s, ErrSeal},
		{"other node", factorySecret, "node-0002", 7, s, ErrSeal},
		{"other serial", factorySecret, "node-0001", 8, s, ErrSeal},
		{"tampered ciphertext", factorySecret, "node-0001", 7, tampered, ErrSeal},
		{"other nonce", factorySecret, "node-0001", 7, otherNonce, ErrSeal},
		{"short secret", seq(0, 15), "node-0001", 7, s, protocol.ErrInvalid},
		{"bad node id", factorySecret, "node 1", 7, s, protocol.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			psk, err := Open(tc.secret, tc.node, tc.serial, tc.sealed)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(psk, testPSK) {
				t.Fatalf("psk %x, want %x", psk, testPSK)
			}
		})
	}
	s2, _ := Seal(factorySecret, "node-0001", 7, testPSK)
	if s2.Nonce == s.Nonce {
		t.Fatal("two seals used the same nonce")
	}
	for _, n := range []int{0, 15, 65} {
		if _, err := Seal(factorySecret, "node-0001", 7, make([]byte, n)); !errors.Is(err, protocol.ErrInvalid) {
			t.Errorf("Seal of a %d-byte psk: %v, want ErrInvalid", n, err)
		}
	}
}

func TestValidate(t *testing.T) {
	key := func(b byte) ed25519.PublicKey {
		return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)).Public().(ed25519.PublicKey)
	}
	tests := []struct {
		name string
		mod  func(*Bundle)
		ok   bool
	}{
		{"sample", func(*Bundle) {}, true},
		{"no labels", func(b *Bundle) { b.Labels = nil }, true},
		{"coap without port", func(b *Bundle) { b.Gateway = "coap://10.0.0.1" }, true},
		{"coap ipv6", func(b *Bundle) { b.Gateway = "coap://[fe80::1]:5683" }, true},
		{"trailing slash", func(b *Bundle) { b.Gateway = "coap://gw/" }, true},
		{"format 2", func(b *Bundle) { b.Format = 2 }, false},
		{"empty node id", func(b *Bundle) { b.NodeID = "" }, false},
		{"serial 0", func(b *Bundle) { b.Serial = 0 }, false},
		{"bad label value", func(b *Bundle) { b.Labels = map[string]string{"a": "x y"} }, false},
		{"empty component", func(b *Bundle) { b.Component = "" }, false},
		{"http gateway", func(b *Bundle) { b.Gateway = "http://gw" }, false},
		{"gateway path", func(b *Bundle) { b.Gateway = "coap://gw/x" }, false},
		{"gateway query", func(b *Bundle) { b.Gateway = "coap://gw?x=1" }, false},
		{"gateway user", func(b *Bundle) { b.Gateway = "coap://u@gw" }, false},
		{"gateway no host", func(b *Bundle) { b.Gateway = "coap://" }, false},
		{"gateway too long", func(b *Bundle) { b.Gateway = "coap://" + strings.Repeat("a", 250) }, false},
		{"no manifest keys", func(b *Bundle) { b.ManifestKeys = nil }, false},
		{"duplicate operator key", func(b *Bundle) { b.OperatorKeys = []ed25519.PublicKey{key(5), key(5)} }, false},
		{"17 manifest keys", func(b *Bundle) {
			b.ManifestKeys = nil
			for i := range 17 {
				b.ManifestKeys = append(b.ManifestKeys, key(byte(i)))
			}
		}, false},
		{"short psk", func(b *Bundle) { b.PSK.Ciphertext = b.PSK.Ciphertext[:31] }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := sampleBundle(t)
			tc.mod(b)
			err := b.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if _, err := Encode(b); tc.ok != (err == nil) {
				t.Fatalf("Encode: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestVerifyRole(t *testing.T) {
	signed, err := Sign(sampleBundle(t), ed25519.NewKeyFromSeed(operatorSeed))
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := sign.NewTrustStore(sign.RoleManifest, ed25519.NewKeyFromSeed(operatorSeed).Public().(ed25519.PublicKey))
	if _, _, err := Verify(signed, ms); !errors.Is(err, ErrRole) {
		t.Fatalf("Verify with a manifest store: %v, want ErrRole", err)
	}
	if _, _, err := Verify(signed, nil); !errors.Is(err, ErrRole) {
		t.Fatalf("Verify with no store: %v, want ErrRole", err)
	}
	b, kid, err := Verify(signed, operatorStore(t))
	if err != nil || b.NodeID != "node-0001" || kid != sign.KeyIDOf(ed25519.NewKeyFromSeed(operatorSeed).Public().(ed25519.PublicKey)) {
		t.Fatalf("Verify = %v, %s, %v", b, kid, err)
	}
	if _, _, err := Verify(make([]byte, MaxSize+1), operatorStore(t)); !errors.Is(err, sign.ErrMalformed) {
		t.Fatalf("Verify of an oversized input: %v", err)
	}
}

func TestChunks(t *testing.T) {
	signed := seq(0, 250)
	for _, maxValue := range []int{5, MaxValueLen, 100, 512} {
		chunks, err := Split(signed, maxValue)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for i, c := range chunks {
			if len(c) > maxValue {
				t.Fatalf("chunk %d of %d bytes, over %d", i, len(c), maxValue)
			}
			idx, total, data, err := ParseChunk(c)
			if err != nil || int(idx) != i || int(total) != len(chunks) {
				t.Fatalf("chunk %d: %d/%d %v", i, idx, total, err)
			}
			got = append(got, data...)
		}
		if !bytes.Equal(got, signed) {
			t.Fatalf("maxValue %d: reassembled bytes differ", maxValue)
		}
	}
	for name, v := range map[string][]byte{
		"empty":         nil,
		"header only":   {0, 0, 0, 1},
		"total zero":    {0, 0, 0, 0, 1},
		"index = total": {0, 1, 0, 1, 1},
	} {
		if _, _, _, err := ParseChunk(v); !errors.Is(err, ErrChunk) {
			t.Errorf("%s: %v, want ErrChunk", name, err)
		}
	}
	if _, err := Split(signed, 4); err == nil {
		t.Error("Split with no room for data succeeded")
	}
	if _, err := Split(make([]byte, MaxSize+1), 100); err == nil {
		t.Error("Split of an oversized bundle succeeded")
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		in   Status
		want string
	}{
		{Status{State: StateAccepted}, "\x02\x00"},
		{Status{State: StateRejected, Reason: ReasonReplay, Text: "serial replayed"}, "\x03\x05serial replayed"},
		{Status{State: StateRejected, Reason: ReasonInvalid, Text: "a much longer reason than fits one value"}, "\x03\x07a much longer reas"},
		{Status{State: StateRejected, Text: "tab\there é"}, "\x03\x00tab?here ??"},
	}
	for _, tc := range tests {
		b, _ := tc.in.MarshalBinary()
		if string(b) != tc.want {
			t.Errorf("%v: %q, want %q", tc.in, b, tc.want)
		}
		if len(b) > MaxValueLen {
			t.Errorf("%v: %d bytes, over %d", tc.in, len(b), MaxValueLen)
		}
		s, err := ParseStatus(b)
		if err != nil || s.State != tc.in.State || s.Reason != tc.in.Reason {
			t.Errorf("ParseStatus(%q) = %v, %v", b, s, err)
		}
	}
	for _, v := range [][]byte{nil, {1}, {9, 0}, make([]byte, MaxValueLen+1)} {
		if _, err := ParseStatus(v); err == nil {
			t.Errorf("ParseStatus(%x) accepted", v)
		}
	}
}
