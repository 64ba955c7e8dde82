package observe

import (
	"net/netip"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	b := netip.MustParseAddrPort("192.0.2.1:5001")
	c := netip.MustParseAddrPort("192.0.2.1:5002")
	r := NewRegistry()

	ob, changed, evicted := r.Add("n1", a, "", []byte{1}, t0)
	if !changed || evicted != nil || ob.Seq != 1 {
		t.Fatalf("first: %+v changed %v evicted %v", ob, changed, evicted)
	}
	// The same endpoint and token again: a refresh, not a change.
	if _, changed, _ := r.Add("n1", a, "", []byte{1}, t0); changed {
		t.Fatal("a refresh counted as a change")
	}
	// A new token from the same endpoint is a change, not a second one.
	if _, changed, _ := r.Add("n1", a, "", []byte{2}, t0); !changed || r.Count() != 1 {
		t.Fatalf("new token: changed %v, %d observations", changed, r.Count())
	}
	r.Add("n1", b, "", []byte{3}, t0)
	// A third endpoint pushes out the oldest (a node back on a new port).
	if _, _, evicted := r.Add("n1", c, "", []byte{4}, t0); evicted == nil || evicted.Addr != a || r.Count() != MaxPerNode {
		t.Fatalf("evicted %+v, %d observations", evicted, r.Count())
	}
	// Next takes a sequence number per notification.
	for want := uint32(2); want <= 3; want++ {
		obs := r.Next("n1")
		if len(obs) != 2 || obs[0].Seq != want || obs[0].Addr != b {
			t.Fatalf("next: %+v, want seq %d from %v first", obs, want, b)
		}
	}
	// Due: once per period, then not until the period passed again.
	if due := r.Due(t0.Add(time.Hour), 2*time.Hour); len(due) != 0 {
		t.Fatalf("due before the period: %+v", due)
	}
	if due := r.Due(t0.Add(2*time.Hour), 2*time.Hour); len(due) != 2 {
		t.Fatalf("due after the period: %d observations, want 2", len(due))
	}
	if due := r.Due(t0.Add(3*time.Hour), 2*time.Hour); len(due) != 0 {
		t.Fatalf("due again within the period: %+v", due)
	}
	// Remove with a token drops only that observation; the node goes
	// with its last one.
	r.Remove("n1", b, []byte{9})
	if r.Count() != 2 {
		t.Fatal("removed with the wrong token")
	}
	r.Remove("n1", b, []byte{3})
	r.Remove("n1", c, nil)
	if r.Count() != 0 || len(r.Next("n1")) != 0 {
		t.Fatalf("%d observations left", r.Count())
	}
}

// TestETag: the first 8 bytes of the payload's SHA-256 (docs/protocol.md
// section 5), pinned with the digest of the empty string.
func TestETag(t *testing.T) {
	if got := ETag(nil); string(got) != "\xe3\xb0\xc4\x42\x98\xfc\x1c\x14" {
		t.Fatalf("ETag of nothing: %x", got)
	}
}

// TestAddReturnsAStableToken: the observation Add returns keeps its token
// when the same endpoint registers again with another one: its caller
// saves that token (bbolt reads it during the commit) while another
// datagram of the endpoint may be handled at once. The registry once
// rewrote the token in place, a data race the simulator's -race run met.
func TestAddReturnsAStableToken(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	r := NewRegistry()
	first, _, _ := r.Add("n1", a, "", []byte{1, 2, 3, 4}, time.Unix(0, 0))
	second, changed, _ := r.Add("n1", a, "", []byte{9, 9, 9, 9}, time.Unix(1, 0))
	if !changed || string(second.Token) != "\x09\x09\x09\x09" {
		t.Fatalf("second Add: token %x changed %v", second.Token, changed)
	}
	if string(first.Token) != "\x01\x02\x03\x04" {
		t.Errorf("the first Add's token became %x", first.Token)
	}
}
