package rollout

import (
	"errors"
	"testing"
)

func TestNodesPages(t *testing.T) {
	fx := setup(t, 25, nil)
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		p, err := fx.e.Nodes("dep", NodeQuery{After: after, Limit: 10}, fx.now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 25 {
			t.Fatalf("total %d, want 25", p.Total)
		}
		for _, n := range p.Nodes {
			ids = append(ids, n.ID)
		}
		if p.Next == "" {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		after = p.Next
	}
	if len(ids) != 25 || ids[0] != "n00" || ids[24] != "n24" {
		t.Fatalf("pages gave %v", ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("not in id order: %v", ids)
		}
	}
	// Wave 1 of 25 nodes at 10% is 3 nodes, assigned at once.
	p, err := fx.e.Nodes("dep", NodeQuery{State: NodeAssigned}, fx.now)
	if err != nil || p.Total != 3 || len(p.Nodes) != 3 || p.Next != "" {
		t.Fatalf("assigned: %+v, %v", p, err)
	}
	if p, _ := fx.e.Nodes("dep", NodeQuery{Wave: 1}, fx.now); p.Total != 3 {
		t.Fatalf("wave 1 has %d nodes, want 3", p.Total)
	}
	if p, _ := fx.e.Nodes("dep", NodeQuery{State: NodeWaiting, Wave: 2}, fx.now); p.Total != 0 {
		t.Fatalf("wave 2 has %d nodes before it started", p.Total)
	}
	if _, err := fx.e.Nodes("nope", NodeQuery{}, fx.now); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown rollout: %v", err)
	}
}
