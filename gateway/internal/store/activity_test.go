package store

import (
	"testing"
	"time"

	"edgeota/protocol"
)

// TestRecord: aggregated activity lands in one transaction, counts add up
// across records, and nodes that never said Hello are skipped.
func TestRecord(t *testing.T) {
	db, _ := openTest(t)
	if _, _, err := db.PutHello(testHello("node-a"), "a:1"); err != nil {
		t.Fatal(err)
	}
	seen := time.Unix(1795000000, 0)
	acts := []Activity{
		{Node: "node-a", Addr: "a:2", Seen: seen, Health: testHealth("node-a", 3, 9), Healths: 9,
			Status: testStatus("node-a", protocol.StateConfirmed, 3, 4), Statuses: 4},
		{Node: "ghost", Addr: "g:1", Seen: seen, Health: testHealth("ghost", 1, 1), Healths: 1},
	}
	if err := db.Record(acts); err != nil {
		t.Fatal(err)
	}
	if err := db.Record([]Activity{{Node: "node-a", Addr: "a:3", Seen: seen.Add(time.Second), Health: testHealth("node-a", 3, 10), Healths: 1}}); err != nil {
		t.Fatal(err)
	}
	n, err := db.Node("node-a")
	if err != nil {
		t.Fatal(err)
	}
	if n.HealthReports != 10 || n.StatusEvents != 4 || n.Health.Number != 10 || n.LastState != protocol.StateConfirmed ||
		n.Addr != "a:3" || !n.LastSeen.Equal(seen.Add(time.Second)) {
		t.Fatalf("node %+v", n)
	}
	if _, err := db.Node("ghost"); err == nil {
		t.Fatal("a node that never said Hello was created")
	}
	if err := db.Record(nil); err != nil {
		t.Fatal(err)
	}
}
