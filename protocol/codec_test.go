package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
)

func TestBounds(t *testing.T) {
	man, err := protocol.Marshal(sampleManifest())
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", protocol.MaxStringLen+1)
	arr := make([]int, protocol.MaxEntries+1)
	m := map[int]int{}
	for i := 0; i <= protocol.MaxEntries; i++ {
		m[i+1000] = 1
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"string over 64 KiB", withPair(t, man, 64, mustCBOR(t, big)), "over the 65536-byte limit"},
		{"array over 1024", withPair(t, man, 64, mustCBOR(t, arr)), "over the 1024-entry limit"},
		{"map over 1024", withPair(t, man, 64, mustCBOR(t, m)), "over the 1024-entry limit"},
		{"empty input", nil, "empty input"},
		{"truncated", man[:len(man)-3], "end of data"},
		{"not a map", mustCBOR(t, []int{1, 2}), "want a manifest map"},
		{"string length past end", []byte{0xa1, 0x03, 0x7a, 0x00, 0x00, 0xff, 0xff}, "runs past the end"},
		{"reserved additional info", []byte{0xa1, 0x01, 0x1c}, "reserved additional information"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := protocol.DecodeManifest(tt.in)
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestRequiredZeroValuesEncoded checks section 2: required keys are always
// encoded, zero values included.
func TestRequiredZeroValuesEncoded(t *testing.T) {
	b, err := protocol.Marshal(&protocol.StatusEvent{NodeID: "n1", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	var m map[uint64]cbor.RawMessage
	if err := cbor.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k := uint64(1); k <= 9; k++ {
		if _, ok := m[k]; !ok {
			t.Errorf("required key %d missing from %x", k, b)
		}
	}
	if _, ok := m[10]; ok {
		t.Errorf("optional empty key 10 encoded")
	}
	h := sampleHello()
	h.Labels = nil
	b, err = protocol.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := protocol.DecodeHello(b); err != nil || len(got.Labels) != 0 {
		t.Fatalf("nil labels: %v %v", got, err)
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	m := sampleManifest()
	m.Component = "bad component"
	if _, err := protocol.Marshal(m); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if _, err := protocol.Marshal(42); err == nil {
		t.Fatal("marshalled an int")
	}
}

func TestDeterministic(t *testing.T) {
	d := sampleDeployment([]byte{0xd2})
	d.Gates.Metrics = map[string]int64{"b": 1, "a": 2, "aa": 3, "c": -4}
	first, err := protocol.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		b, _ := protocol.Marshal(d)
		if !bytes.Equal(b, first) {
			t.Fatal("encoding differs between runs")
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		s             string
		id, key, vals bool
	}{
		{"node-01", true, true, true},
		{"Node_01.x", true, false, true},
		{"us-east:1/a", false, false, true},
		{"", false, false, false},
		{strings.Repeat("a", 33), true, false, true},
		{strings.Repeat("a", 65), false, false, false},
		{"héllo", false, false, false},
		{"a b", false, false, false},
	}
	for _, tt := range tests {
		if got := protocol.ValidID(tt.s); got != tt.id {
			t.Errorf("ValidID(%q) = %v", tt.s, got)
		}
		if got := protocol.ValidLabelKey(tt.s); got != tt.key {
			t.Errorf("ValidLabelKey(%q) = %v", tt.s, got)
		}
		if got := protocol.ValidLabelValue(tt.s); got != tt.vals {
			t.Errorf("ValidLabelValue(%q) = %v", tt.s, got)
		}
	}
}

func TestClassText(t *testing.T) {
	s := "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	c, err := protocol.ParseClass(strings.ToUpper(s))
	if err != nil {
		t.Fatal(err)
	}
	if c != testClass || c.String() != s {
		t.Fatalf("got %s", c)
	}
	for _, bad := range []string{"", "6ba7b8109dad11d180b400c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430cg"} {
		if _, err := protocol.ParseClass(bad); err == nil {
			t.Errorf("ParseClass(%q) accepted", bad)
		}
	}
}

func BenchmarkDecodeHealthReport(b *testing.B) {
	r := sampleHealth()
	r.Metrics = nil
	enc, err := protocol.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	var out protocol.HealthReport
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if err := protocol.DecodeHealthReport(enc, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHealthReportWithMetrics(b *testing.B) {
	enc, err := protocol.Marshal(sampleHealth())
	if err != nil {
		b.Fatal(err)
	}
	var out protocol.HealthReport
	b.ReportAllocs()
	for b.Loop() {
		if err := protocol.DecodeHealthReport(enc, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeHealthReport(b *testing.B) {
	r := sampleHealth()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeManifest(b *testing.B) {
	enc, _ := protocol.Marshal(sampleManifest())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.DecodeManifest(enc); err != nil {
			b.Fatal(err)
		}
	}
}
