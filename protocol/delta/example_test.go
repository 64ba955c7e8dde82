package delta_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"

	"edgeota/protocol/delta"
)

// A gateway computes a delta once; a node checks it is for the image it
// runs, then applies it as the blocks arrive, journaling checkpoints.
func Example() {
	base := bytes.Repeat([]byte("weights of model 1.0 "), 200)
	target := bytes.Clone(base)
	copy(target[3000:], "retrained head")

	patch, err := delta.Diff(base, target)
	if err != nil {
		panic(err)
	}

	// On the node.
	h, err := delta.ParseHeader(patch)
	if err != nil {
		panic(err)
	}
	if err := h.CheckBase(sha256.Sum256(base), int64(len(base))); err != nil {
		panic(err) // fall back to the full image
	}
	var slot bytes.Buffer // the inactive slot
	p, err := delta.NewPatcher(h, bytes.NewReader(base), delta.Checkpoint{}, func(b []byte) error {
		_, err := slot.Write(b)
		return err
	})
	if err != nil {
		panic(err)
	}
	for block := range slices.Chunk(patch, 64) { // CoAP blocks
		if _, err := p.Write(block); err != nil {
			panic(err)
		}
		_ = p.Last() // journal this once the slot holds Last().Out bytes
	}
	if err := p.Close(); err != nil {
		panic(err)
	}
	fmt.Println("image", len(target), "bytes, delta", len(patch), "bytes")
	fmt.Println("rebuilt:", sha256.Sum256(slot.Bytes()) == h.Target)
	// Output:
	// image 4200 bytes, delta 149 bytes
	// rebuilt: true
}
