package corpus

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestPairsPinned pins the corpus bytes: docs/deltas.md quotes sizes
// measured on it, so a change to the generator must be deliberate (update
// these digests and the figures together).
func TestPairsPinned(t *testing.T) {
	want := map[string][2]string{
		"a-head":          {"57edb66c48c7f9a5", "2faa87cbebce25ad"}, // 204240, 204240 bytes
		"b-finetune":      {"57edb66c48c7f9a5", "eecd968e3145f7c0"}, // 204240, 204240 bytes
		"c-operator":      {"57edb66c48c7f9a5", "24fc3872903315ce"}, // 204240, 222640 bytes
		"d-unrelated":     {"57edb66c48c7f9a5", "caab89de336c3b4a"}, // 204240, 310176 bytes
		"large-head":      {"5ebe186ae4c2c33b", "af89be57c22fd6ff"}, // 957344, 957344 bytes
		"large-unrelated": {"5ebe186ae4c2c33b", "6fbf18560c9c6e95"}, // 957344, 957344 bytes
	}
	got := map[string][2]string{}
	head, unrelated := Large(15)
	for _, p := range append(Pairs(15), head, unrelated) {
		b, tg := sha256.Sum256(p.Base), sha256.Sum256(p.Target)
		got[p.Name] = [2]string{hex.EncodeToString(b[:8]), hex.EncodeToString(tg[:8])}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: digests %v, want %v", name, got[name], w)
		}
	}
	if len(want) != len(got) {
		t.Errorf("%d pairs pinned, %d generated", len(want), len(got))
	}
}
