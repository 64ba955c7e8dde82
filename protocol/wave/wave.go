package wave

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MaxBasisPoints is the whole cohort in basis points (100 %): the value the last
// wave of a deployment must have.
const MaxBasisPoints = 10000

// ErrWaves is wrapped by the error [Validate], [Plan] and [WaveOf] return for a wave
// list that is empty, not strictly increasing, above [MaxBasisPoints], or whose last
// value is not MaxBasisPoints.
var ErrWaves = errors.New("wave: invalid waves")

// ErrNotInCohort is returned by [WaveOf] for a node that is not in the cohort.
var ErrNotInCohort = errors.New("wave: node not in cohort")

// keyBuf is the size of the stack buffer Key hashes from: enough for two ids of 64
// bytes (docs/protocol.md section 0) and the separator, with room to spare.
const keyBuf = 256

// Key returns the wave-order key of a node in a deployment: the first 8 bytes,
// big-endian, of sha256(deploymentID || 0x00 || nodeID), over the UTF-8 bytes of the
// ids (docs/protocol.md section 7). It does not allocate for ids within the limits of
// docs/protocol.md section 0; longer ids are hashed all the same.
func Key(deploymentID, nodeID string) uint64 {
	var sum [sha256.Size]byte
	if len(deploymentID)+1+len(nodeID) <= keyBuf {
		var buf [keyBuf]byte
		b := append(buf[:0], deploymentID...)
		b = append(b, 0)
		b = append(b, nodeID...)
		sum = sha256.Sum256(b)
	} else {
		h := sha256.New()
		_, _ = io.WriteString(h, deploymentID)
		_, _ = h.Write([]byte{0})
		_, _ = io.WriteString(h, nodeID)
		h.Sum(sum[:0])
	}
	return binary.BigEndian.Uint64(sum[:8])
}

// keyed is a node id with its Key.
type keyed struct {
	key uint64
	id  string
}

// compareKeyed orders by key, then by node id (byte-wise) when two keys are equal.
func compareKeyed(a, b keyed) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// Order returns the node ids in wave order: ascending by [Key], with equal keys (in
// practice only duplicate ids) ordered by node id, compared byte-wise. The result is
// a new slice holding every element of nodeIDs, duplicates included; nodeIDs is not
// modified.
func Order(deploymentID string, nodeIDs []string) []string {
	ks := make([]keyed, len(nodeIDs))
	for i, id := range nodeIDs {
		ks[i] = keyed{Key(deploymentID, id), id}
	}
	slices.SortFunc(ks, compareKeyed)
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.id
	}
	return out
}

// Target returns how many nodes of a cohort of n must have been targeted for a wave
// at basisPoints to have taken enough: max(1, ceil(basisPoints × n / 10000)).
//
// An empty cohort (n <= 0) targets nobody: Target returns 0. basisPoints above
// [MaxBasisPoints] count as MaxBasisPoints, so the result is never more than n. The
// arithmetic is exact for every int n.
func Target(basisPoints uint32, n int) int {
	if n <= 0 {
		return 0
	}
	bp := uint64(min(basisPoints, MaxBasisPoints))
	// ceil(bp*n/10000) with n = q*10000 + r is bp*q + ceil(bp*r/10000); neither
	// product can overflow, and the sum is at most n.
	q, r := uint64(n)/MaxBasisPoints, uint64(n)%MaxBasisPoints
	t := bp*q + (bp*r+MaxBasisPoints-1)/MaxBasisPoints
	return max(1, int(t))
}

// Validate checks a deployment's wave list (docs/protocol.md section 7, key 6): cumulative
// basis points, at least one, strictly increasing, none above [MaxBasisPoints], the
// last equal to it. A first wave of 0 is allowed: by [Target] it takes one node. The
// error wraps [ErrWaves].
func Validate(waves []uint32) error {
	if len(waves) == 0 {
		return fmt.Errorf("%w: no waves", ErrWaves)
	}
	for i, bp := range waves {
		if bp > MaxBasisPoints {
			return fmt.Errorf("%w: wave %d at %d basis points is above %d", ErrWaves, i, bp, MaxBasisPoints)
		}
		if i > 0 && bp <= waves[i-1] {
			return fmt.Errorf("%w: wave %d at %d basis points does not increase on wave %d at %d", ErrWaves, i, bp, i-1, waves[i-1])
		}
	}
	if last := waves[len(waves)-1]; last != MaxBasisPoints {
		return fmt.Errorf("%w: last wave at %d basis points, want %d", ErrWaves, last, MaxBasisPoints)
	}
	return nil
}

// Plan splits a cohort into waves. waves holds cumulative basis points (see
// [Validate]); the result has one slice per wave, in order, holding only the nodes
// that wave adds, in wave order ([Order]). Together the slices hold every element of
// nodeIDs exactly once, and wave k ends after [Target](waves[k], len(nodeIDs))
// nodes. A wave can be empty when the cohort is too small to tell it from the one
// before.
//
// nodeIDs should be distinct: a duplicate counts as one more node. The slices share
// one backing array, with their capacity cut to their length, and nodeIDs is not
// modified. The error wraps [ErrWaves].
func Plan(deploymentID string, nodeIDs []string, waves []uint32) ([][]string, error) {
	if err := Validate(waves); err != nil {
		return nil, err
	}
	order := Order(deploymentID, nodeIDs)
	plan := make([][]string, len(waves))
	prev := 0
	for k, bp := range waves {
		t := Target(bp, len(order))
		plan[k] = order[prev:t:t]
		prev = t
	}
	return plan, nil
}

// WaveOf returns the 0-based index of the wave that nodeID falls in, within the
// cohort nodeIDs (which must contain it), as [Plan] would place it. It hashes every
// node once and does not sort. The error wraps [ErrWaves] for an invalid wave list,
// or is [ErrNotInCohort].
func WaveOf(deploymentID, nodeID string, nodeIDs []string, waves []uint32) (int, error) {
	if err := Validate(waves); err != nil {
		return 0, err
	}
	me := keyed{Key(deploymentID, nodeID), nodeID}
	found, rank := false, 0
	for _, id := range nodeIDs {
		if id == nodeID {
			found = true
			continue
		}
		if compareKeyed(keyed{Key(deploymentID, id), id}, me) < 0 {
			rank++
		}
	}
	if !found {
		return 0, ErrNotInCohort
	}
	for k, bp := range waves {
		if rank < Target(bp, len(nodeIDs)) {
			return k, nil
		}
	}
	return len(waves) - 1, nil // unreachable: the last wave targets every node
}
