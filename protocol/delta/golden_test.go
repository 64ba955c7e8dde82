package delta

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenPair is the golden base and target: text of a tensor table, a run
// of int8-like weights, the target nudging some weights, rewriting a name
// and inserting 600 bytes of new weights (which LZMA cannot shrink, so the
// patch has stored chunks as well as LZMA chunks).
func goldenPair() (base, target []byte) {
	base = append([]byte("TFL3 tensor conv0/weights shape 16x3x3x1 scale 0.0123\n"), randBytes(61, 700)...)
	base = append(base, bytes.Repeat([]byte{0}, 200)...)
	target = slices.Clone(base)
	copy(target[12:], "dense")
	for i := 100; i < 400; i += 7 {
		target[i]++
	}
	target = slices.Insert(target, 500, randBytes(62, 600)...)
	return base, target
}

// goldenOptions cut the golden patch into small chunks.
var goldenOptions = []Option{WithChunkSize(300, 256)}

// TestGolden pins format 1 byte for byte: testdata/golden.patch must
// rebuild golden.target from golden.base, and Diff must still produce it
// (a new version of the LZMA library that encodes differently fails the
// second check only; then run with -update, since the committed patch
// still applies). Change the committed patch only with the format (and
// Format1).
func TestGolden(t *testing.T) {
	base, target := goldenPair()
	patch, err := Diff(base, target, goldenOptions...)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"golden.base": base, "golden.target": target, "golden.patch": patch}
	if *update {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range files {
		want, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s differs from testdata/%s (run go test -update after a deliberate format change):\n%s", name, name, hex.Dump(b[:min(len(b), 128)]))
		}
	}
	// Whatever Diff does, the committed patch must still apply: readers of
	// format 1 in the field depend on that.
	committed, err := os.ReadFile(filepath.Join("testdata", "golden.patch"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Apply(base, committed)
	if err != nil || !bytes.Equal(got, target) {
		t.Fatalf("testdata/golden.patch does not rebuild the target: %v", err)
	}
	// The header, field by field.
	wantHeader := "45444c54" + // magic "EDLT"
		"01" + "00" + // format 1, flags
		"00000000000003ba" + // base size 954
		"0000000000000612" // target size 1554
	if got := hex.EncodeToString(patch[:22]); got != wantHeader {
		t.Errorf("header starts %s, want %s", got, wantHeader)
	}
	kinds := map[byte]int{}
	for off := HeaderSize; off < len(patch); {
		h, k := mustChunkHead(t, patch[off:])
		kinds[h.kind]++
		off += k + h.packed
	}
	if kinds[kindStored] == 0 || kinds[kindLZMA] == 0 {
		t.Errorf("golden patch has chunks %v, want both kinds", kinds)
	}
}
