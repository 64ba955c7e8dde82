package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// nodeCount is NodeCount, failing the test on an error.
func nodeCount(tb testing.TB, db *DB) int {
	tb.Helper()
	n, err := db.NodeCount()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestMaxNodes: at the bound, a new node's Hello is refused and writes
// nothing, while known nodes keep saying Hello; the bound is the one the
// store is opened with, and a lowered one never refuses a known node.
func TestMaxNodes(t *testing.T) {
	db, path := openTest(t, WithMaxNodes(3))
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		if _, _, err := db.PutHello(testHello(id), "a"); err != nil {
			t.Fatalf("hello %s: %v", id, err)
		}
	}
	if _, _, err := db.PutHello(testHello("node-d"), "a"); !errors.Is(err, ErrRegistryFull) {
		t.Fatalf("fourth node's hello = %v, want ErrRegistryFull", err)
	}
	if _, err := db.Node("node-d"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused node stored: %v", err)
	}
	if _, _, err := db.PutHello(testHello("node-a"), "b"); err != nil {
		t.Errorf("known node's hello at the bound: %v", err)
	}
	if err := db.PutHealth(testHealth("node-b", 1, 1), "b"); err != nil {
		t.Errorf("known node's health report at the bound: %v", err)
	}
	if got := nodeCount(t, db); got != 3 {
		t.Errorf("NodeCount = %d, want 3", got)
	}

	checkInvariants(t, db)
	db.Close()
	db = openPath(t, path, WithMaxNodes(2))
	if got := nodeCount(t, db); got != 3 {
		t.Errorf("NodeCount after reopening = %d, want 3", got)
	}
	if _, _, err := db.PutHello(testHello("node-c"), "c"); err != nil {
		t.Errorf("known node's hello over a lowered bound: %v", err)
	}
	if _, _, err := db.PutHello(testHello("node-e"), "c"); !errors.Is(err, ErrRegistryFull) {
		t.Errorf("new node's hello over a lowered bound = %v, want ErrRegistryFull", err)
	}

	checkInvariants(t, db)
	db.Close()
	db = openPath(t, path) // no bound
	if _, _, err := db.PutHello(testHello("node-e"), "c"); err != nil {
		t.Errorf("hello without a bound: %v", err)
	}
	if got := nodeCount(t, db); got != 4 {
		t.Errorf("NodeCount = %d, want 4", got)
	}
}

// TestNodeCountAtOpen: a file whose count is wrong (written before the
// count existed, so 0) is counted again by Open.
func TestNodeCountAtOpen(t *testing.T) {
	db, path := openTest(t)
	for i := range 5 {
		if _, _, err := db.PutHello(testHello(fmt.Sprintf("node-%d", i)), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketNodes).SetSequence(0) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openPath(t, path, WithMaxNodes(5))
	if got := nodeCount(t, db); got != 5 {
		t.Errorf("NodeCount after Open = %d, want 5", got)
	}
	if _, _, err := db.PutHello(testHello("node-new"), "a"); !errors.Is(err, ErrRegistryFull) {
		t.Errorf("hello over the bound after a recount = %v, want ErrRegistryFull", err)
	}
}

// TestMaxNodesConcurrentHellos: Hellos of many new nodes at once, sharing
// bbolt batches, with failing calls in the same batches that make Batch
// run the others again, never take the registry past its bound: exactly
// the room left is admitted, known nodes are all served.
func TestMaxNodesConcurrentHellos(t *testing.T) {
	const bound, known, newNodes = 50, 10, 200
	db, _ := openTest(t, WithMaxNodes(bound))
	for i := range known {
		if _, _, err := db.PutHello(testHello(fmt.Sprintf("known-%d", i)), "a"); err != nil {
			t.Fatal(err)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, refused := 0, 0
	for i := range newNodes {
		wg.Go(func() {
			<-start
			_, _, err := db.PutHello(testHello(fmt.Sprintf("new-%d", i)), "b")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case errors.Is(err, ErrRegistryFull):
				refused++
			default:
				t.Errorf("hello new-%d: %v", i, err)
			}
		})
		if i%10 == 0 { // an error in a batch: Batch runs the rest again
			wg.Go(func() {
				<-start
				if err := db.PutHealth(testHealth(fmt.Sprintf("stranger-%d", i), 1, 1), "c"); !errors.Is(err, ErrUnknownNode) {
					t.Errorf("stranger's health report = %v, want ErrUnknownNode", err)
				}
			})
		}
	}
	for i := range known {
		wg.Go(func() {
			<-start
			if _, _, err := db.PutHello(testHello(fmt.Sprintf("known-%d", i)), "b"); err != nil {
				t.Errorf("known-%d's hello: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if admitted != bound-known || refused != newNodes-(bound-known) {
		t.Errorf("%d new nodes admitted, %d refused; want %d and %d", admitted, refused, bound-known, newNodes-(bound-known))
	}
	nodes, err := db.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != bound || nodeCount(t, db) != bound {
		t.Errorf("registry holds %d nodes, NodeCount %d; want %d", len(nodes), nodeCount(t, db), bound)
	}
}
