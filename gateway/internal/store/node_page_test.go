package store

import (
	"fmt"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
)

// putNodes writes nodes n-<from> to n-<to-1> in one transaction, each
// with a Hello's fields, a health report and a status event: node i has
// label site=even or site=odd and last state failed when i%3 == 0.
func putNodes(tb testing.TB, db *DB, from, to int) {
	tb.Helper()
	h := testHello("")
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for i := from; i < to; i++ {
			r := &nodeRecord{Class: h.Class, Component: h.Component, AgentVersion: h.AgentVersion, RunningSeq: h.RunningSeq,
				RunningDigest: h.RunningDigest, ActiveSlot: h.ActiveSlot, ActiveState: h.ActiveState, EpochFloor: h.EpochFloor,
				Other: h.Other, Labels: map[string]string{"site": []string{"even", "odd"}[i%2], "ring": "canary"},
				Health: testHealth(nodeName(i), 1, 7), HealthReports: 7, StatusEvents: 3, Addr: "10.0.0.1:5683", LastState: protocol.StateConfirmed}
			if i%3 == 0 {
				r.LastState = protocol.StateFailed
			}
			if err := putNode(tx.Bucket(bucketNodes), nodeName(i), r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func nodeName(i int) string { return fmt.Sprintf("n-%05d", i) }

// walkPages reads every page of q from its After on, checking that each
// page holds at most q.Limit nodes, that its total is total, and that the
// walk yields want in order: no gap, no duplicate.
func walkPages(t *testing.T, db *DB, q NodeQuery, want []string, total int) {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			t.Fatalf("more than %d pages: the walk loops", pages)
		}
		p, err := db.NodePage(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Nodes) > max(q.Limit, 1) || p.Total != total {
			t.Fatalf("page after %q: %d nodes (limit %d), total %d; want total %d", q.After, len(p.Nodes), q.Limit, p.Total, total)
		}
		for _, n := range p.Nodes {
			got = append(got, n.ID)
		}
		if p.Next == "" {
			break
		}
		if p.Next != got[len(got)-1] {
			t.Fatalf("next %q is not the page's last node %q", p.Next, got[len(got)-1])
		}
		q.After = p.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walked %d nodes %v\nwant %d %v", len(got), got, len(want), want)
	}
}

// TestNodePage walks every page of 250 nodes, unfiltered and filtered, at
// page sizes that divide the count and that do not: every matching node
// once, in id order, the total the same on every page, the last page's
// next empty.
func TestNodePage(t *testing.T) {
	db, _ := openTest(t)
	const n = 250
	putNodes(t, db, 0, n)
	all, even, evenFailed := []string{}, []string{}, []string{}
	for i := range n {
		all = append(all, nodeName(i))
		if i%2 == 0 {
			even = append(even, nodeName(i))
			if i%3 == 0 {
				evenFailed = append(evenFailed, nodeName(i))
			}
		}
	}
	isEven := func(n *Node) bool { return n.Labels["site"] == "even" }
	tests := []struct {
		name  string
		match func(*Node) bool
		want  []string
	}{
		{"every node", nil, all},
		{"label", isEven, even},
		{"label and state", func(n *Node) bool { return isEven(n) && n.LastState == protocol.StateFailed }, evenFailed},
		{"none", func(*Node) bool { return false }, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 7, 50, 125, 250, 1000} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				walkPages(t, db, NodeQuery{Match: tt.match, Limit: limit}, tt.want, len(tt.want))
			})
		}
	}
	t.Run("after an id between two nodes", func(t *testing.T) {
		walkPages(t, db, NodeQuery{After: "n-00099x", Limit: 40}, all[100:], n)
	})
	t.Run("after the last node", func(t *testing.T) {
		p, err := db.NodePage(NodeQuery{After: nodeName(n - 1), Limit: 10})
		if err != nil || len(p.Nodes) != 0 || p.Next != "" || p.Total != n {
			t.Fatalf("got %d nodes, next %q, total %d, %v; want none, no next, total %d", len(p.Nodes), p.Next, p.Total, err, n)
		}
	})
	t.Run("a limit below 1 reads as 1", func(t *testing.T) {
		p, err := db.NodePage(NodeQuery{Limit: 0})
		if err != nil || len(p.Nodes) != 1 || p.Next != all[0] {
			t.Fatalf("got %d nodes, next %q, %v", len(p.Nodes), p.Next, err)
		}
	})
}

// TestNodePageWhileNodesJoin: nodes that say Hello between two pages
// appear once when their id sorts after the cursor, never when before,
// and no node is read twice.
func TestNodePageWhileNodesJoin(t *testing.T) {
	db, _ := openTest(t)
	putNodes(t, db, 10, 20)
	p, err := db.NodePage(NodeQuery{Limit: 5})
	if err != nil || p.Next != nodeName(14) {
		t.Fatalf("first page: next %q, %v", p.Next, err)
	}
	putNodes(t, db, 0, 10)  // behind the cursor
	putNodes(t, db, 20, 25) // ahead of it
	var got []string
	for q := (NodeQuery{After: p.Next, Limit: 5}); ; {
		p, err := db.NodePage(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p.Nodes {
			got = append(got, n.ID)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	var want []string
	for i := 15; i < 25; i++ {
		want = append(want, nodeName(i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the first page: %v, want %v", got, want)
	}
}

// BenchmarkNodePage10k reads the first page of 100 of 10,000 nodes,
// without a filter (a cursor and a key count) and with one (every record
// decoded for the total).
func BenchmarkNodePage10k(b *testing.B) {
	db, _ := openTest(b)
	putNodes(b, db, 0, 10000)
	for _, bc := range []struct {
		name  string
		match func(*Node) bool
	}{
		{"unfiltered", nil},
		{"label", func(n *Node) bool { return n.Labels["site"] == "even" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.NodePage(NodeQuery{Match: bc.match, After: nodeName(5000), Limit: 100}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
