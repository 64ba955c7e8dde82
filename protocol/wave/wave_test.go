package wave

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// keyByHand computes Key straight from its definition in docs/protocol.md section 7.
func keyByHand(deploymentID, nodeID string) uint64 {
	sum := sha256.Sum256([]byte(deploymentID + "\x00" + nodeID))
	return binary.BigEndian.Uint64(sum[:8])
}

func TestKeyGolden(t *testing.T) {
	// The literal keys were computed once with a separate program calling
	// crypto/sha256 and cross-checked with `printf 'dep-1\0node-1' | sha256sum`
	// (eaf26eabebd966c1 1eb6a8de...); they pin the wire-visible order so that a
	// change to Key cannot go unnoticed even if keyByHand changed with it.
	for _, tt := range []struct {
		name, deployment, node string
		want                   uint64
	}{
		{"simple", "dep-1", "node-1", 0xeaf26eabebd966c1},
		{"other node", "dep-1", "node-2", 0xfbfcf68ed268f320},
		{"empty ids", "", "", 0x6e340b9cffb37a98},
		{"realistic", "rollout-2024-11-a", "gw1.node-000123", 0x7ff0bfed8ee09793},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Key(tt.deployment, tt.node); got != tt.want {
				t.Errorf("Key(%q, %q) = %#016x, want %#016x", tt.deployment, tt.node, got, tt.want)
			}
			if got := keyByHand(tt.deployment, tt.node); got != tt.want {
				t.Errorf("keyByHand(%q, %q) = %#016x, want %#016x", tt.deployment, tt.node, got, tt.want)
			}
		})
	}
}

func TestKeyMatchesDefinition(t *testing.T) {
	long := strings.Repeat("x", keyBuf) // takes the streaming path in Key
	for _, tt := range []struct{ name, deployment, node string }{
		{"spec limits", strings.Repeat("d", 64), strings.Repeat("n", 64)},
		{"fills the buffer", strings.Repeat("d", keyBuf-2), "n"},
		{"one past the buffer", strings.Repeat("d", keyBuf-1), "n"},
		{"long deployment", long, "node-1"},
		{"long node", "dep-1", long},
		{"separator matters a", "ab", "c"},
		{"separator matters b", "a", "bc"},
		{"UTF-8 bytes", "déploiement", "nœud"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := Key(tt.deployment, tt.node), keyByHand(tt.deployment, tt.node); got != want {
				t.Errorf("Key = %#016x, want %#016x", got, want)
			}
		})
	}
	if Key("ab", "c") == Key("a", "bc") {
		t.Error(`Key("ab", "c") == Key("a", "bc"): the 0x00 separator is missing`)
	}
}

func TestKeyAllocs(t *testing.T) {
	d, n := strings.Repeat("d", 64), strings.Repeat("n", 64)
	if got := testing.AllocsPerRun(100, func() { Key(d, n) }); got != 0 {
		t.Errorf("Key allocates %v times, want 0", got)
	}
}

func TestTarget(t *testing.T) {
	for _, tt := range []struct {
		name string
		bp   uint32
		n    int64 // cases above math.MaxInt are skipped on 32-bit platforms
		want int64
	}{
		{"1 bp of 1", 1, 1, 1},
		{"all of 7", 10000, 7, 7},
		{"33.33 % of 3 is ceil(0.9999)", 3333, 3, 1},
		{"33.34 % of 3 is ceil(1.0002)", 3334, 3, 2},
		{"half of 3", 5000, 3, 2},
		{"half of 4", 5000, 4, 2},
		{"1 % of 100", 100, 100, 1},
		{"1 % of 101", 100, 101, 2},
		{"1 % of 10", 100, 10, 1},
		{"0 bp takes one node", 0, 1000, 1},
		{"empty cohort", 5000, 0, 0},
		{"empty cohort at 100 %", 10000, 0, 0},
		{"negative cohort", 5000, -1, 0},
		{"above 100 % clamps", 20000, 7, 7},
		{"max uint32 clamps", math.MaxUint32, 7, 7},
		{"1 bp of max int32", 1, math.MaxInt32, 214749},           // ceil(214748.3647)
		{"99.99 % of max int32", 9999, math.MaxInt32, 2147268899}, // ceil(2147268898.5352)
		{"1 bp of 1<<31", 1, 1 << 31, 214749},                     // ceil(214748.3648)
		{"all of 1<<31", 10000, 1 << 31, 1 << 31},
		{"99.99 % of 1<<31", 9999, 1 << 31, 2147268900},          // ceil(2147268899.5352)
		{"1 bp of max int64", 1, math.MaxInt64, 922337203685478}, // ceil(922337203685477.5807)
		{"all of max int64", 10000, math.MaxInt64, math.MaxInt64},
		{"99.99 % of max int64", 9999, math.MaxInt64, 9222449699651090330}, // ceil(...329.4193)
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.n > math.MaxInt {
				t.Skip("n does not fit in int")
			}
			n, want := int(tt.n), int(tt.want)
			if got := Target(tt.bp, n); got != want {
				t.Errorf("Target(%d, %d) = %d, want %d", tt.bp, n, got, want)
			}
			if got := targetBig(tt.bp, n); got != want {
				t.Errorf("targetBig(%d, %d) = %d, want %d (the table is wrong)", tt.bp, n, got, want)
			}
		})
	}
}

// targetBig is Target's definition in arbitrary precision.
func targetBig(bp uint32, n int) int {
	if n <= 0 {
		return 0
	}
	bp = min(bp, MaxBasisPoints)
	num := new(big.Int).Mul(big.NewInt(int64(bp)), big.NewInt(int64(n)))
	num.Add(num, big.NewInt(MaxBasisPoints-1))
	num.Quo(num, big.NewInt(MaxBasisPoints))
	return max(1, int(num.Int64()))
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		waves []uint32
		ok    bool
	}{
		{"one wave", []uint32{10000}, true},
		{"typical", []uint32{100, 1000, 5000, 10000}, true},
		{"starts at zero", []uint32{0, 10000}, true},
		{"nil", nil, false},
		{"empty", []uint32{}, false},
		{"equal", []uint32{100, 100, 10000}, false},
		{"decreasing", []uint32{500, 100, 10000}, false},
		{"above 100 %", []uint32{100, 10001}, false},
		{"above 100 % in the middle", []uint32{100, 20000, 10000}, false},
		{"last below 100 %", []uint32{100, 9999}, false},
		{"only zero", []uint32{0}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.waves)
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate(%v) = %v, want nil", tt.waves, err)
				}
				return
			}
			if !errors.Is(err, ErrWaves) {
				t.Fatalf("Validate(%v) = %v, want an error wrapping ErrWaves", tt.waves, err)
			}
			if _, err := Plan("d", []string{"a"}, tt.waves); !errors.Is(err, ErrWaves) {
				t.Errorf("Plan with waves %v: error %v, want ErrWaves", tt.waves, err)
			}
			if _, err := WaveOf("d", "a", []string{"a"}, tt.waves); !errors.Is(err, ErrWaves) {
				t.Errorf("WaveOf with waves %v: error %v, want ErrWaves", tt.waves, err)
			}
		})
	}
}

// nodeIDs returns n distinct node ids.
func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("gw%d.node-%05d", i%3, i)
	}
	return ids
}

func TestPlan(t *testing.T) {
	for _, tt := range []struct {
		name  string
		n     int
		waves []uint32
		sizes []int // nodes new in each wave
	}{
		{"one wave", 5, []uint32{10000}, []int{5}},
		{"typical", 1000, []uint32{100, 1000, 5000, 10000}, []int{10, 90, 400, 500}},
		{"small cohort leaves waves empty", 3, []uint32{1, 2, 3334, 10000}, []int{1, 0, 1, 1}},
		{"single node", 1, []uint32{100, 5000, 10000}, []int{1, 0, 0}},
		{"empty cohort", 0, []uint32{100, 10000}, []int{0, 0}},
		{"zero first wave", 50, []uint32{0, 10000}, []int{1, 49}},
		{"odd sizes", 7, []uint32{3333, 6667, 10000}, []int{3, 2, 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ids := nodeIDs(tt.n)
			plan, err := Plan("dep-7", ids, tt.waves)
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, "dep-7", ids, tt.waves, plan)
			var sizes []int
			for _, w := range plan {
				sizes = append(sizes, len(w))
			}
			if !slices.Equal(sizes, tt.sizes) {
				t.Errorf("wave sizes = %v, want %v", sizes, tt.sizes)
			}
		})
	}
}

// checkPlan checks the invariants of a plan: waves disjoint, their union all nodes,
// wave k ending at Target(waves[k], N), the concatenation equal to Order, every
// node's WaveOf agreeing, and nodeIDs left as it was.
func checkPlan(t testing.TB, dep string, ids []string, waves []uint32, plan [][]string) {
	t.Helper()
	if len(plan) != len(waves) {
		t.Fatalf("%d waves planned, want %d", len(plan), len(waves))
	}
	var all []string
	in := map[string]int{}
	for k, w := range plan {
		if cap(w) != len(w) {
			t.Errorf("wave %d: capacity %d, length %d", k, cap(w), len(w))
		}
		for _, id := range w {
			if prev, dup := in[id]; dup {
				t.Errorf("node %q in waves %d and %d", id, prev, k)
			}
			in[id] = k
		}
		all = append(all, w...)
		if got, want := len(all), Target(waves[k], len(ids)); got != want {
			t.Errorf("after wave %d: %d nodes, want Target = %d", k, got, want)
		}
	}
	if want := Order(dep, ids); !slices.Equal(all, want) {
		t.Errorf("waves concatenated = %v, want Order = %v", all, want)
	}
	if !isPermutation(all, ids) {
		t.Errorf("waves hold %v, not a permutation of %v", all, ids)
	}
	for _, id := range ids {
		k, err := WaveOf(dep, id, ids, waves)
		if err != nil || k != in[id] {
			t.Errorf("WaveOf(%q) = %d, %v; Plan put it in wave %d", id, k, err, in[id])
		}
	}
}

// isPermutation reports whether a and b hold the same elements, counting repeats.
func isPermutation(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestPlanDoesNotMutate(t *testing.T) {
	ids := nodeIDs(100)
	orig := slices.Clone(ids)
	if _, err := Plan("d", ids, []uint32{1000, 10000}); err != nil {
		t.Fatal(err)
	}
	_ = Order("d", ids)
	if !slices.Equal(ids, orig) {
		t.Error("Plan or Order modified nodeIDs")
	}
}

func TestOrderIsPermutation(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for range 200 {
		n := r.IntN(50)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("n%d", r.IntN(40)) // duplicates on purpose
		}
		dep := fmt.Sprintf("dep-%d", r.Uint32())
		orig := slices.Clone(ids)
		got := Order(dep, ids)
		if !isPermutation(got, ids) {
			t.Fatalf("Order(%q, %v) = %v, not a permutation", dep, ids, got)
		}
		if !slices.Equal(ids, orig) {
			t.Fatalf("Order modified its input")
		}
		if !slices.IsSortedFunc(got, func(a, b string) int {
			return compareKeyed(keyed{Key(dep, a), a}, keyed{Key(dep, b), b})
		}) {
			t.Fatalf("Order(%q, %v) = %v, not ascending by key", dep, ids, got)
		}
		if n > 0 && len(got) > 0 && &got[0] == &ids[0] {
			t.Fatal("Order returned its input slice")
		}
	}
}

func TestOrderStable(t *testing.T) {
	// A node joining the cohort takes its place without moving the others: Order
	// of the bigger cohort, less the newcomer, is the Order of the old one. The
	// input order does not matter either.
	ids := nodeIDs(200)
	before := Order("dep-9", ids)
	for _, newcomer := range []string{"late-1", "late-2", "gw0.node-99999"} {
		after := Order("dep-9", append(slices.Clone(ids), newcomer))
		without := slices.DeleteFunc(slices.Clone(after), func(s string) bool { return s == newcomer })
		if !slices.Equal(without, before) {
			t.Errorf("adding %q moved other nodes", newcomer)
		}
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	if !slices.Equal(Order("dep-9", reversed), before) {
		t.Error("Order depends on the order of its input")
	}
	if slices.Equal(Order("dep-10", ids), before) {
		t.Error("two deployments give the same order")
	}
}

func TestPlanStable(t *testing.T) {
	// Wave boundaries move with N, but a node that was in an earlier wave than
	// another stays in an earlier or the same wave after a node joins.
	waves := []uint32{100, 1000, 5000, 10000}
	ids := nodeIDs(300)
	before, _ := Plan("dep-3", ids, waves)
	after, _ := Plan("dep-3", append(slices.Clone(ids), "late-1"), waves)
	pos := func(plan [][]string) map[string]int {
		m := map[string]int{}
		for k, w := range plan {
			for _, id := range w {
				m[id] = k
			}
		}
		return m
	}
	pb, pa := pos(before), pos(after)
	order := Order("dep-3", ids)
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if pa[a] > pa[b] {
			t.Errorf("after a join, %q (wave %d) comes after %q (wave %d)", a, pa[a], b, pa[b])
		}
		if pb[a] > pb[b] {
			t.Errorf("%q (wave %d) comes after %q (wave %d)", a, pb[a], b, pb[b])
		}
	}
}

func TestWaveOfNotInCohort(t *testing.T) {
	_, err := WaveOf("d", "stranger", nodeIDs(10), []uint32{10000})
	if !errors.Is(err, ErrNotInCohort) {
		t.Errorf("WaveOf for a stranger: %v, want ErrNotInCohort", err)
	}
}

func FuzzTarget(f *testing.F) {
	for _, s := range []struct {
		bp uint32
		n  int
	}{{1, 1}, {10000, 7}, {3333, 3}, {5000, 3}, {5000, 0}, {1, math.MaxInt32}, {9999, math.MaxInt}, {math.MaxUint32, -5}} {
		f.Add(s.bp, s.n)
	}
	f.Fuzz(func(t *testing.T, bp uint32, n int) {
		got := Target(bp, n)
		if want := targetBig(bp, n); got != want {
			t.Fatalf("Target(%d, %d) = %d, want %d", bp, n, got, want)
		}
		if n > 0 && (got < 1 || got > n) {
			t.Fatalf("Target(%d, %d) = %d, outside [1, n]", bp, n, got)
		}
	})
}

// FuzzPlan takes the node ids as a comma-separated list and the waves as
// little-endian uint32s, so that it explores invalid wave lists too.
func FuzzPlan(f *testing.F) {
	enc := func(ws ...uint32) []byte {
		var b []byte
		for _, w := range ws {
			b = binary.LittleEndian.AppendUint32(b, w)
		}
		return b
	}
	f.Add("dep-1", "a,b,c,d,e,f,g", enc(100, 1000, 10000))
	f.Add("dep-1", "", enc(10000))
	f.Add("", "x", enc(0, 10000))
	f.Add("dep-2", "a,a,b", enc(3333, 10000))
	f.Add("dep-2", "a,b", enc())
	f.Add("dep-2", "a,b", enc(5000, 5000, 10000))
	f.Add("dep-2", "a,b", enc(20000))
	f.Fuzz(func(t *testing.T, dep, nodes string, raw []byte) {
		var ids []string
		if nodes != "" {
			ids = strings.Split(nodes, ",")
		}
		var waves []uint32
		for len(raw) >= 4 {
			waves = append(waves, binary.LittleEndian.Uint32(raw))
			raw = raw[4:]
		}
		plan, err := Plan(dep, ids, waves)
		if verr := Validate(waves); (err == nil) != (verr == nil) {
			t.Fatalf("Plan error %v, Validate error %v", err, verr)
		}
		if err != nil {
			if !errors.Is(err, ErrWaves) {
				t.Fatalf("Plan error %v does not wrap ErrWaves", err)
			}
			return
		}
		if hasDuplicates(ids) {
			// WaveOf and the per-node checks assume distinct ids; the rest holds.
			var all []string
			for _, w := range plan {
				all = append(all, w...)
			}
			if !isPermutation(all, ids) {
				t.Fatalf("waves hold %v, not a permutation of %v", all, ids)
			}
			return
		}
		checkPlan(t, dep, ids, waves, plan)
	})
}

// hasDuplicates reports whether ids repeats an element.
func hasDuplicates(ids []string) bool {
	s := slices.Clone(ids)
	slices.Sort(s)
	return len(slices.Compact(s)) != len(ids)
}

func BenchmarkKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Key("rollout-2024-11-a", "gw1.node-000123")
	}
}

func BenchmarkOrder1000(b *testing.B) {
	ids := nodeIDs(1000)
	b.ReportAllocs()
	for b.Loop() {
		Order("rollout-2024-11-a", ids)
	}
}
