package rollout

import (
	"testing"

	"edgeota/protocol"
)

// TestTransfersCounted: the transfers the nodes' status events report
// about the rollout's manifest (status key 64) are kept per node (a
// fallback reason through the later events of the full download), shown
// on the node pages and counted in the status, survive a reload, and a
// status event about another manifest, or one that repeats the transfer,
// changes nothing.
func TestTransfersCounted(t *testing.T) {
	fx := setup(t, 20, nil)
	w1 := fx.assignedNew()
	if len(w1) != 2 {
		t.Fatalf("wave 1 assigned %v", w1)
	}
	delta, full := w1[0], w1[1]
	send := func(id string, state protocol.State, seq uint64, tr *protocol.Transfer) {
		fx.number++
		fx.e.Status(&protocol.StatusEvent{NodeID: id, State: state, Seq: seq, Digest: newDigest, BootCount: 1,
			Number: fx.number, Transfer: tr}, fx.now)
	}
	d := protocol.Digest{0xde}
	send(delta, protocol.StateDownloading, newSeq, &protocol.Transfer{Kind: protocol.TransferDelta, Delta: d})
	send(delta, protocol.StateVerified, newSeq, &protocol.Transfer{Kind: protocol.TransferDelta, Delta: d, Fetched: 4000})
	send(full, protocol.StateDownloading, newSeq, &protocol.Transfer{Kind: protocol.TransferDelta, Delta: d, Fetched: 100})
	send(full, protocol.StateDownloading, newSeq, &protocol.Transfer{Kind: protocol.TransferFull, Fetched: 100, Fallback: "base changed"})
	send(full, protocol.StateVerified, newSeq, &protocol.Transfer{Kind: protocol.TransferFull, Fetched: 60100})
	send(full, protocol.StateVerified, prevSeq, &protocol.Transfer{Kind: protocol.TransferDelta, Delta: d, Fetched: 1}) // another manifest

	want := TransfersView{Delta: 1, Full: 1, Fallback: 1, FetchedBytes: 64100}
	if got := fx.status().Transfers; got != want {
		t.Fatalf("transfers %+v, want %+v", got, want)
	}
	views := map[string]NodeView{}
	for _, n := range fx.nodes("dep") {
		views[n.ID] = n
	}
	if v := views[delta]; v.Transfer != "delta" || v.Fetched != 4000 || v.Fallback != "" {
		t.Fatalf("delta node %+v", v)
	}
	if v := views[full]; v.Transfer != "full" || v.Fetched != 60100 || v.Fallback != "base changed" {
		t.Fatalf("fallback node %+v", v)
	}
	// What is saved reloads with the transfers.
	f := fx.fk()
	saves := f.saves
	e2 := NewEngine(f, f)
	if err := e2.Load(f.records(), func([]byte) (*protocol.Deployment, error) { return fx.d, nil }, fx.now); err != nil {
		t.Fatal(err)
	}
	if st, _ := e2.Get("dep", fx.now); st.Transfers != want {
		t.Fatalf("reloaded transfers %+v, want %+v", st.Transfers, want)
	}
	// The same transfer again writes nothing.
	send(delta, protocol.StateVerified, newSeq, &protocol.Transfer{Kind: protocol.TransferDelta, Delta: d, Fetched: 4000})
	if f := fx.fk(); f.saves != saves {
		t.Fatalf("a repeated transfer was saved (%d saves, was %d)", f.saves, saves)
	}
}
