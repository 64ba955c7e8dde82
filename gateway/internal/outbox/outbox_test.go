package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/test/testutil"
)

func TestRoundTrip(t *testing.T) {
	clock := testutil.NewFakeClock()
	o, _ := openTest(t, Config{Clock: clock.Now})
	t0 := clock.Now()
	mustAppend(t, o, KindHealth, "node-1", []byte("h1"))
	clock.Advance(time.Second)
	mustAppend(t, o, KindStatus, "node-2", []byte("e1"))
	mustAppend(t, o, KindHealth, "node-2", []byte{})
	clock.Advance(4 * time.Second)

	st := o.Stats()
	if st.Health.Depth != 2 || st.Status.Depth != 1 || st.Appended != 3 || st.Health.OldestAge != 5*time.Second || st.Status.OldestAge != 4*time.Second {
		t.Errorf("stats %+v", st)
	}
	health, err := o.Peek(KindHealth, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{
		{Seq: 1, Kind: KindHealth, Node: "node-1", Data: []byte("h1"), Added: t0},
		{Seq: 3, Kind: KindHealth, Node: "node-2", Data: []byte{}, Added: t0.Add(time.Second)},
	}
	if !slices.EqualFunc(health, want, itemEqual) {
		t.Errorf("health = %+v, want %+v", health, want)
	}
	events, err := o.Peek(KindStatus, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Seq != 2 || string(events[0].Data) != "e1" || events[0].Kind != KindStatus {
		t.Errorf("events = %+v", events)
	}
	// Everything was handed out: the next Peek is empty.
	if more, _ := o.Peek(KindHealth, 10); len(more) != 0 {
		t.Errorf("second peek = %+v", more)
	}
	if err := o.Ack(append(health, events...)); err != nil {
		t.Fatal(err)
	}
	st = o.Stats()
	if st.Health.Depth != 0 || st.Status.Depth != 0 || st.Bytes != 0 || st.Acked != 3 || st.Health.OldestAge != 0 {
		t.Errorf("stats after ack %+v", st)
	}
	o.Nack(KindHealth)
	if items, _ := o.Peek(KindHealth, 10); len(items) != 0 {
		t.Errorf("peek after ack and nack = %+v", items)
	}
	checkAccounting(t, o)
}

func itemEqual(a, b Item) bool {
	return a.Seq == b.Seq && a.Kind == b.Kind && a.Node == b.Node && string(a.Data) == string(b.Data) && a.Added.Equal(b.Added)
}

func TestAppendArgs(t *testing.T) {
	o, _ := openTest(t, Config{})
	for _, tc := range []struct {
		name string
		kind Kind
		node string
	}{
		{"unknown kind", Kind(2), "n"},
		{"empty node", KindHealth, ""},
		{"node too long", KindHealth, strings.Repeat("n", MaxNodeLen+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := o.Append(tc.kind, tc.node, nil, nil); err == nil || errors.Is(err, ErrFull) {
				t.Errorf("Append = %v, want an argument error", err)
			}
		})
	}
	if _, err := o.Peek(KindStatus, 0); err == nil {
		t.Error("Peek(max 0) succeeded")
	}
	if _, err := o.Peek(Kind(7), 1); err == nil {
		t.Error("Peek(Kind(7)) succeeded")
	}
	if err := o.Ack([]Item{{Kind: Kind(9), Seq: 1}}); err == nil {
		t.Error("Ack of Kind(9) succeeded")
	}
	mustAppend(t, o, KindHealth, strings.Repeat("n", MaxNodeLen), nil)
	if s := KindHealth.String() + KindStatus.String() + Kind(5).String(); s != "healthstatusKind(5)" {
		t.Errorf("String: %s", s)
	}
}

// TestOrdering appends from many goroutines, one node each, over both
// kinds, and checks that every kind comes back in sequence order with every
// node's items in the order it appended them.
func TestOrdering(t *testing.T) {
	o, path := openTest(t, Config{})
	const nodes, perNode = 16, 150
	var wg sync.WaitGroup
	for n := range nodes {
		wg.Go(func() {
			for i := range perNode {
				kind := Kind((n + i/10) % 2) // each node switches kind every 10
				if err := appendWait(t, o, kind, fmt.Sprintf("node-%02d", n), fmt.Appendf(nil, "%d", i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkAccounting(t, o)
	check := func(o *Outbox) {
		next := map[string]int{}
		lastSeq := map[Kind]uint64{}
		total := 0
		for k := range Kind(numKinds) {
			for _, it := range peekAll(t, o, k) {
				if it.Seq <= lastSeq[k] {
					t.Fatalf("%s: seq %d after %d", k, it.Seq, lastSeq[k])
				}
				lastSeq[k] = it.Seq
				var n, i int
				fmt.Sscanf(it.Node, "node-%d", &n)
				fmt.Sscanf(string(it.Data), "%d", &i)
				if Kind((n+i/10)%2) != k {
					t.Fatalf("%s holds %s/%d", k, it.Node, i)
				}
				// Within a kind, a node's items follow one another, skipping
				// the runs it sent to the other kind.
				key := it.Node + k.String()
				if i < next[key] {
					t.Fatalf("%s: %s item %d after %d", k, it.Node, i, next[key]-1)
				}
				next[key] = i + 1
				total++
			}
		}
		if total != nodes*perNode {
			t.Fatalf("%d items, want %d", total, nodes*perNode)
		}
	}
	check(o)
	o.Close()
	check(openPath(t, Config{Path: path}))
}

func TestPipelinedPeek(t *testing.T) {
	o, _ := openTest(t, Config{})
	for i := range 30 {
		mustAppend(t, o, KindStatus, "n", fmt.Appendf(nil, "%d", i))
	}
	peek := func(n int) []Item {
		t.Helper()
		items, err := o.Peek(KindStatus, n)
		if err != nil {
			t.Fatal(err)
		}
		return items
	}
	seqs := func(items []Item) []uint64 {
		var s []uint64
		for _, it := range items {
			s = append(s, it.Seq)
		}
		return s
	}
	span := func(from, to uint64) []uint64 {
		var s []uint64
		for i := from; i <= to; i++ {
			s = append(s, i)
		}
		return s
	}
	a, b := peek(10), peek(10)
	if !slices.Equal(seqs(a), span(1, 10)) || !slices.Equal(seqs(b), span(11, 20)) {
		t.Fatalf("two peeks: %v, %v", seqs(a), seqs(b))
	}
	// The second batch is acked first; then the broker connection drops.
	if err := o.Ack(b); err != nil {
		t.Fatal(err)
	}
	o.Nack(KindStatus)
	if got := seqs(peek(15)); !slices.Equal(got, append(span(1, 10), span(21, 25)...)) {
		t.Fatalf("after nack: %v", got)
	}
	if got := seqs(peek(15)); !slices.Equal(got, span(26, 30)) {
		t.Fatalf("rest: %v", got)
	}
	if got := peek(15); len(got) != 0 {
		t.Fatalf("peek past the end: %v", seqs(got))
	}
	// Items appended now come after what was handed out.
	mustAppend(t, o, KindStatus, "n", []byte("late"))
	if got := peek(15); len(got) != 1 || string(got[0].Data) != "late" {
		t.Fatalf("late item: %+v", got)
	}
	// Acking twice, or acking dropped items, is harmless.
	if err := o.Ack(b); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Status.Acked != 10 || st.Status.Depth != 21 {
		t.Errorf("stats %+v", st.Status)
	}
	checkAccounting(t, o)
}

// TestAckMiddleReopen acks a batch in the middle, reopens, and expects the
// rest back in order, and sequence numbers that keep increasing even after
// everything was acked.
func TestAckMiddleReopen(t *testing.T) {
	o, path := openTest(t, Config{})
	for i := range 50 {
		mustAppend(t, o, KindHealth, "n", fmt.Appendf(nil, "h%d", i))
		mustAppend(t, o, KindStatus, "n", fmt.Appendf(nil, "e%d", i))
	}
	for k := range Kind(numKinds) {
		o.Peek(k, 10)
		mid, _ := o.Peek(k, 10)
		if err := o.Ack(mid); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openPath(t, Config{Path: path})
	checkAccounting(t, o)
	for k, prefix := range map[Kind]string{KindHealth: "h", KindStatus: "e"} {
		var want []string
		for i := range 50 {
			if i < 10 || i >= 20 {
				want = append(want, fmt.Sprintf("%s%d", prefix, i))
			}
		}
		items := peekAll(t, o, k)
		if got := datas(items); !slices.Equal(got, want) {
			t.Errorf("%s after reopen: %v", k, got)
		}
		if err := o.Ack(items); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openPath(t, Config{Path: path})
	mustAppend(t, o, KindHealth, "n", []byte("after"))
	if items, _ := o.Peek(KindHealth, 1); len(items) != 1 || items[0].Seq != 101 {
		t.Errorf("first item after everything was acked: %+v, want seq 101", items)
	}
}

// TestFullPolicy appends a script of items under small bounds and checks
// what is refused, what is dropped and what remains.
func TestFullPolicy(t *testing.T) {
	// Items are named by their payload; "h" are health reports, "e" status
	// events; size is len(payload) + len("n") + recordOverhead.
	const one = recordOverhead + 1 + 2 // size of an item with a 2-byte payload
	type step struct {
		kind    Kind
		data    string
		wantErr error // from Append
	}
	h := func(d string) step { return step{kind: KindHealth, data: d} }
	e := func(d string) step { return step{kind: KindStatus, data: d} }
	full := func(s step) step { s.wantErr = ErrFull; return s }
	for _, tc := range []struct {
		name         string
		cfg          Config
		peekFirst    int // health items handed out (in flight) before the script
		steps        []step
		health, evts []string
		dropped      uint64
		rejected     uint64
	}{
		{
			name:    "health dropped oldest first",
			cfg:     Config{MaxItems: 4},
			steps:   []step{h("h0"), h("h1"), h("h2"), h("h3"), h("h4"), h("h5")},
			health:  []string{"h2", "h3", "h4", "h5"},
			dropped: 2,
		},
		{
			name:    "events make room by dropping health",
			cfg:     Config{MaxItems: 4},
			steps:   []step{h("h0"), e("e0"), h("h1"), e("e1"), e("e2"), e("e3")},
			evts:    []string{"e0", "e1", "e2", "e3"},
			dropped: 2,
		},
		{
			name:     "only events: refused",
			cfg:      Config{MaxItems: 3},
			steps:    []step{e("e0"), e("e1"), e("e2"), full(e("e3")), full(h("h0"))},
			evts:     []string{"e0", "e1", "e2"},
			rejected: 2,
		},
		{
			name:     "events and one health: a health replaces a health, an event takes its place",
			cfg:      Config{MaxItems: 3},
			steps:    []step{e("e0"), e("e1"), h("h0"), h("h1"), e("e2"), full(h("h2")), full(e("e3"))},
			evts:     []string{"e0", "e1", "e2"},
			dropped:  2,
			rejected: 2,
		},
		{
			name:    "bytes bound drops as many as needed",
			cfg:     Config{MaxBytes: 4 * one},
			steps:   []step{h("h0"), h("h1"), e("e0"), h("h2"), step{kind: KindHealth, data: "h3" + strings.Repeat("x", one+1)}},
			evts:    []string{"e0"},
			health:  []string{"h3" + strings.Repeat("x", one+1)},
			dropped: 3,
		},
		{
			name:     "an item alone larger than MaxBytes",
			cfg:      Config{MaxBytes: 4 * one},
			steps:    []step{h("h0"), full(step{kind: KindHealth, data: strings.Repeat("x", 4*one)}), full(step{kind: KindStatus, data: strings.Repeat("x", 4*one)})},
			health:   []string{"h0"},
			rejected: 2,
		},
		{
			// h0 and h1 are sent; h2 drops h0; the PUBACK of h0 and h1
			// then deletes h1 only.
			name:      "health in flight is dropped too",
			cfg:       Config{MaxItems: 2},
			peekFirst: 2,
			steps:     []step{h("h0"), h("h1"), h("h2")},
			health:    []string{"h2"},
			dropped:   1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var onDrop int
			var mu sync.Mutex
			tc.cfg.OnDrop = func(n int) { mu.Lock(); onDrop += n; mu.Unlock() }
			o, _ := openTest(t, tc.cfg)
			var inflight []Item
			for i, s := range tc.steps {
				err := appendWait(t, o, s.kind, "n", []byte(s.data))
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
					t.Fatalf("step %d (%s %s): %v, want %v", i, s.kind, s.data, err, s.wantErr)
				}
				if i+1 == tc.peekFirst {
					inflight, _ = o.Peek(KindHealth, tc.peekFirst)
				}
			}
			if tc.peekFirst > 0 {
				if err := o.Ack(inflight); err != nil { // some were dropped meanwhile
					t.Fatal(err)
				}
				o.Nack(KindHealth)
			}
			if got := datas(peekAll(t, o, KindHealth)); !slices.Equal(got, tc.health) && len(got)+len(tc.health) > 0 {
				t.Errorf("health %q, want %q", got, tc.health)
			}
			if got := datas(peekAll(t, o, KindStatus)); !slices.Equal(got, tc.evts) && len(got)+len(tc.evts) > 0 {
				t.Errorf("events %q, want %q", got, tc.evts)
			}
			st := o.Stats()
			if st.DroppedHealth != tc.dropped || st.Rejected != tc.rejected || uint64(onDrop) != tc.dropped {
				t.Errorf("dropped %d (OnDrop %d), rejected %d; want %d, %d", st.DroppedHealth, onDrop, st.Rejected, tc.dropped, tc.rejected)
			}
			if limit := orDefault(tc.cfg.MaxItems, DefaultMaxItems); st.Health.Depth+st.Status.Depth > limit {
				t.Errorf("%d items queued, bound %d", st.Health.Depth+st.Status.Depth, limit)
			}
			if limit := orDefault(tc.cfg.MaxBytes, DefaultMaxBytes); st.Bytes > limit {
				t.Errorf("%d bytes queued, bound %d", st.Bytes, limit)
			}
			checkAccounting(t, o)
		})
	}
}

// TestFullPolicyConcurrent overflows a small outbox from many goroutines
// and checks the bounds hold, events (80, fewer than the bound) all
// survive, and the counts add up.
func TestFullPolicyConcurrent(t *testing.T) {
	const maxItems = 100
	o, _ := openTest(t, Config{MaxItems: maxItems})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var events []string
	var rejectedEvents int
	for g := range 20 {
		wg.Go(func() {
			for i := range 100 {
				kind := KindHealth
				if i%25 == 0 {
					kind = KindStatus
				}
				d := fmt.Sprintf("%d/%d", g, i)
				err := appendWait(t, o, kind, "n", []byte(d))
				switch {
				case err == nil && kind == KindStatus:
					mu.Lock()
					events = append(events, d)
					mu.Unlock()
				case errors.Is(err, ErrFull) && kind == KindStatus:
					mu.Lock()
					rejectedEvents++
					mu.Unlock()
				case err != nil:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	checkAccounting(t, o)
	st := o.Stats()
	if st.Health.Depth+st.Status.Depth != maxItems || rejectedEvents != 0 {
		t.Errorf("%d items queued, want %d; %d events refused", st.Health.Depth+st.Status.Depth, maxItems, rejectedEvents)
	}
	if got := datas(peekAll(t, o, KindStatus)); len(got) != len(events) {
		t.Errorf("%d events queued, %d appended", len(got), len(events))
	}
	if st.DroppedHealth != st.Health.Appended-uint64(st.Health.Depth) {
		t.Errorf("dropped %d, appended %d health, %d queued", st.DroppedHealth, st.Health.Appended, st.Health.Depth)
	}
}

// TestGroupCommit checks that concurrent appends share commits.
func TestGroupCommit(t *testing.T) {
	o, _ := openTest(t, Config{})
	const n = 10_000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ch := make(chan error, 1)
			if err := o.Append(Kind(i%2), "node", fmt.Appendf(nil, "%d", i), func(err error) { ch <- err }); err != nil {
				errs <- err
				return
			}
			if err := <-ch; err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := o.Stats()
	t.Logf("%d appends in %d commits (%.1f per commit)", st.Appended, st.Commits, st.AvgBatch)
	if st.Appended != n || st.Commits >= st.Appended/10 {
		t.Errorf("%d appends in %d commits; want %d in fewer than %d", st.Appended, st.Commits, n, n/10)
	}
	checkAccounting(t, o)
}

// TestLingerEndsEarly checks that the writer does not linger for the
// whole commit interval once as many appends wait as the last commit
// carried: one at a time here.
func TestLingerEndsEarly(t *testing.T) {
	o, _ := openTest(t, Config{CommitInterval: time.Hour})
	for range 20 {
		mustAppend(t, o, KindHealth, "n", nil)
	}
	if st := o.Stats(); st.Appended != 20 || st.Commits != 20 {
		t.Fatalf("appended %d in %d commits", st.Appended, st.Commits)
	}
}

// TestClose checks that Close commits what was accepted and refuses the
// rest.
func TestClose(t *testing.T) {
	o, path := openTest(t, Config{CommitInterval: 50 * time.Millisecond})
	const n = 500
	var calls sync.WaitGroup
	var failed int
	var mu sync.Mutex
	for i := range n {
		calls.Add(1)
		err := o.Append(KindStatus, "n", fmt.Appendf(nil, "%d", i), func(err error) {
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
			calls.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	calls.Wait() // every done ran before Close returned
	if failed != 0 {
		t.Fatalf("%d appends failed", failed)
	}
	if err := o.Append(KindStatus, "n", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := o.Peek(KindStatus, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Peek after Close: %v", err)
	}
	if err := o.Ack([]Item{{Kind: KindStatus, Seq: 1}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	o = openPath(t, Config{Path: path})
	if got := peekAll(t, o, KindStatus); len(got) != n {
		t.Errorf("%d items after reopen, want %d", len(got), n)
	}
}

func TestLocked(t *testing.T) {
	_, path := openTest(t, Config{})
	_, err := Open(Config{Path: path, LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestOpenConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no path", Config{}},
		{"negative items", Config{Path: dir + "/a", MaxItems: -1}},
		{"negative batch", Config{Path: dir + "/b", CommitBatch: -1}},
		{"tiny bytes", Config{Path: dir + "/c", MaxBytes: recordOverhead}},
		{"a directory", Config{Path: dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if o, err := Open(tc.cfg); err == nil {
				o.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestCommitFailure checks that a failed commit reports its error to done
// and Ack, stores nothing and leaves the accounting right.
func TestCommitFailure(t *testing.T) {
	o, err := Open(Config{Path: t.TempDir() + "/outbox.db"})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, KindStatus, "n", []byte("kept"))
	items, _ := o.Peek(KindStatus, 1)
	o.db.Close() // every commit fails from now on
	if err := appendWait(t, o, KindHealth, "n", []byte("lost")); err == nil || errors.Is(err, ErrFull) {
		t.Errorf("append into a closed file: %v", err)
	}
	if err := o.Ack(items); err == nil {
		t.Error("ack into a closed file succeeded")
	}
	st := o.Stats()
	if st.Health.Pending != 0 || st.Health.Depth != 0 || st.Status.Depth != 1 || st.Appended != 1 {
		t.Errorf("stats after failed commits: %+v", st)
	}
	o.Close()
}

// TestCorrupted checks that a corrupted item is skipped by Peek and deleted,
// and deleted by Open.
func TestCorrupted(t *testing.T) {
	o, path := openTest(t, Config{})
	for i := range 5 {
		mustAppend(t, o, KindHealth, "n", fmt.Appendf(nil, "%d", i))
	}
	corrupt := func(db *bolt.DB, seq uint64) {
		t.Helper()
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(kindBuckets[KindHealth])
			v := append([]byte(nil), b.Get(seqKey(seq))...)
			v[len(v)-5] ^= 0x40 // the last payload byte
			return b.Put(seqKey(seq), v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	corrupt(o.db, 2)
	if got := datas(peekAll(t, o, KindHealth)); !slices.Equal(got, []string{"0", "2", "3", "4"}) {
		t.Errorf("peek: %q", got)
	}
	mustAppend(t, o, KindStatus, "n", nil) // a commit, which deletes it
	if st := o.Stats(); st.Corrupt != 1 || st.Health.Depth != 4 {
		t.Errorf("after peek: corrupt %d, depth %d", st.Corrupt, st.Health.Depth)
	}
	checkAccounting(t, o)
	o.Close()

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	corrupt(db, 4)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(kindBuckets[KindHealth]).Put([]byte("bad key"), nil) })
	db.Close()
	o = openPath(t, Config{Path: path})
	if got := datas(peekAll(t, o, KindHealth)); !slices.Equal(got, []string{"0", "2", "4"}) {
		t.Errorf("after reopen: %q", got)
	}
	if st := o.Stats(); st.Corrupt != 2 || st.Health.Depth != 3 { // the bad key and item 3
		t.Errorf("after reopen: corrupt %d, depth %d", st.Corrupt, st.Health.Depth)
	}
	checkAccounting(t, o)
}

func TestRecord(t *testing.T) {
	added := time.Unix(1_700_000_000, 123)
	v := encodeRecord("node-7", []byte("payload"), added)
	if int64(len(v)) != recordSize("node-7", []byte("payload")) {
		t.Errorf("size %d, recordSize %d", len(v), recordSize("node-7", []byte("payload")))
	}
	node, data, at, err := decodeRecord(v)
	if err != nil || string(node) != "node-7" || string(data) != "payload" || !at.Equal(added) || !addedOf(v).Equal(added) {
		t.Fatalf("decode = %q %q %v %v", node, data, at, err)
	}
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"short", v[:recordOverhead-1]},
		{"format", append([]byte{2}, v[1:]...)},
		{"flipped bit", func() []byte { w := slices.Clone(v); w[12] ^= 1; return w }()},
		{"truncated", v[:len(v)-1]},
		{"node length past the end", encodeRaw(func(w []byte) []byte { w[9] = 200; return w }, v)},
		{"empty node", encodeRaw(func(w []byte) []byte { w[9] = 0; return w }, v)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := decodeRecord(tc.v); !errors.Is(err, errCorrupt) {
				t.Errorf("decode: %v, want errCorrupt", err)
			}
		})
	}
}

// encodeRaw applies edit to a copy of v's body and seals it with a valid
// checksum.
func encodeRaw(edit func([]byte) []byte, v []byte) []byte {
	body := edit(slices.Clone(v[:len(v)-4]))
	return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}
