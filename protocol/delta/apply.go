package delta

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"edgeota/protocol"
)

// CheckBase returns an error wrapping ErrWrongBase unless the patch applies
// to the image with digest d and size bytes. A node calls it with the
// digest of the image it runs before it fetches or applies anything more.
func (h Header) CheckBase(d protocol.Digest, size int64) error {
	if h.Base != d || h.BaseSize != size {
		return fmt.Errorf("%w: patch base %s (%d bytes), running %s (%d bytes)", ErrWrongBase, h.Base, h.BaseSize, d, size)
	}
	return nil
}

// Apply applies a whole patch in memory and returns the target, checked
// against the header's target digest. It suits a gateway checking a delta
// it computed; a node streams with a [Patcher] instead.
func Apply(base, patch []byte) ([]byte, error) {
	h, err := ParseHeader(patch)
	if err != nil {
		return nil, err
	}
	if err := h.CheckBase(sha256.Sum256(base), int64(len(base))); err != nil {
		return nil, err
	}
	out := make([]byte, 0, h.TargetSize)
	p, err := NewPatcher(h, bytes.NewReader(base), Checkpoint{}, func(b []byte) error {
		out = append(out, b...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := p.Write(patch); err != nil {
		return nil, err
	}
	if err := p.Close(); err != nil {
		return nil, err
	}
	if sha256.Sum256(out) != h.Target {
		return nil, fmt.Errorf("%w: target digest mismatch", ErrMalformed)
	}
	return out, nil
}
