package store

import (
	"errors"
	"testing"
)

// TestAddAuditOncePerStatusEvent: an audit entry of the status event the
// node's latest entry records is refused with ErrAuditDuplicate; another
// event of the node, another node's event, or an entry that names no
// event is added.
func TestAddAuditOncePerStatusEvent(t *testing.T) {
	db, _ := openTest(t)
	for _, tc := range []struct {
		name          string
		node          string
		boot, number  uint64
		wantDuplicate bool
	}{
		{"first event", "n1", 1, 1, false},
		{"the same event again", "n1", 1, 1, true},
		{"the same event from another node", "n2", 1, 1, false},
		{"a later event of the same boot", "n1", 1, 2, false},
		{"the first event of the next boot", "n1", 2, 1, false},
		{"no event named", "n1", 0, 0, false},
		{"no event named, again", "n1", 0, 0, false},
		{"the latest named event again", "n1", 2, 1, true},
	} {
		_, err := db.AddAudit(AuditEntry{Node: tc.node, Actor: "op", BootCount: tc.boot, Number: tc.number})
		if got := errors.Is(err, ErrAuditDuplicate); got != tc.wantDuplicate || (err != nil && !got) {
			t.Errorf("%s: AddAudit = %v, want duplicate %v", tc.name, err, tc.wantDuplicate)
		}
	}
	all, err := db.Audit("")
	if err != nil || len(all) != 6 {
		t.Fatalf("Audit: %d entries (%v), want 6", len(all), err)
	}
}
