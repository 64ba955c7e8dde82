package delta

import (
	"bytes"
	"testing"

	"edgeota/protocol/delta/corpus"
)

// TestCorpusTargets checks issue 15's size targets on the corpus of
// docs/deltas.md: the retrained head (a) in at most 15% of the image, the
// full fine-tune (b) under half of it, and no pair (the full fine-tune (b) and the unrelated images (d) included)
// over the image plus the header and 16 bytes of chunk overhead per 4 KiB;
// and every patch rebuilds its target.
func TestCorpusTargets(t *testing.T) {
	for _, pr := range corpus.Pairs(corpusSeed) {
		t.Run(pr.Name, func(t *testing.T) {
			patch, err := Diff(pr.Base, pr.Target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Apply(pr.Base, patch)
			if err != nil || !bytes.Equal(got, pr.Target) {
				t.Fatalf("patch does not rebuild the target: %v", err)
			}
			ratio := float64(len(patch)) / float64(len(pr.Target))
			t.Logf("image %d bytes, delta %d bytes (%.1f%%)", len(pr.Target), len(patch), 100*ratio)
			if pr.Name == "a-head" && ratio > 0.15 {
				t.Errorf("retrained head: delta is %.1f%% of the image, target at most 15%%", 100*ratio)
			}
			// Weights moved by -2..2 stay in copies thanks to matches'
			// near scoring (bsdiff's exact scoring: 91%).
			if pr.Name == "b-finetune" && ratio > 0.5 {
				t.Errorf("full fine-tune: delta is %.1f%% of the image, want under 50%%", 100*ratio)
			}
			if limit := len(pr.Target) + HeaderSize + 16*(len(pr.Target)/4096+1); len(patch) > limit {
				t.Errorf("delta of %d bytes over the image plus overhead, %d", len(patch), limit)
			}
		})
	}
}
