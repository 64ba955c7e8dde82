package fleet

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"edgeota/firmware-sim/clock"
	"edgeota/firmware-sim/scenario"
	"edgeota/gateway/admin"
	"edgeota/test/testutil"
)

// TestRunWaitsForEveryNodesHello: a run whose rollouts have all ended goes
// on while one of its nodes has not said Hello yet, and ends once it has.
// A node not heard is in no rollout: the run once ended without it, and
// the node stayed on its old model (or was stopped in the middle of the
// update it was assigned as it joined). The gateway here has no rollout
// left running; each check of the end reads its rollouts, which is the
// sync point: after three reads the run has seen the rollouts ended three
// times with the node unheard.
func TestRunWaitsForEveryNodesHello(t *testing.T) {
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method+" "+r.URL.Path != admin.RouteRollouts.String() {
			http.NotFound(w, r)
			return
		}
		reads.Add(1)
		io.WriteString(w, "[]")
	}))
	defer srv.Close()
	api, err := admin.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	quick, slow := &node{id: "quick"}, &node{id: "slow"}
	quick.said.Store(true)
	s := &sim{sc: &scenario.Scenario{Duration: time.Hour, TimeScale: 60}, clock: clock.NewScaled(clock.NewFake(testStart), 60),
		api: api, nodes: []*node{quick, slow}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ended struct {
		finished bool
		err      error
	}
	done := make(chan ended, 1)
	go func() {
		finished, err := s.drive(ctx)
		done <- ended{finished, err}
	}()
	testutil.Eventually(t, "three checks of the run's end", func() bool {
		select {
		case e := <-done:
			t.Fatalf("the run ended (finished %v, %v) before node slow said Hello", e.finished, e.err)
		default:
		}
		return reads.Load() >= 3
	})
	slow.said.Store(true)
	if e := testutil.Receive(t, "the run's end once every node said Hello", done); !e.finished || e.err != nil {
		t.Fatalf("the run ended with finished %v, %v; want finished", e.finished, e.err)
	}
}
