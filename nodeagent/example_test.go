package nodeagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Driving a slot update on simulated flash: install a signed model, boot
// it on trial, let probation confirm it.
func Example() {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	signer, _ := sign.NewSigner(key)
	trust, _ := sign.NewTrustStore(sign.RoleManifest, key.Public().(ed25519.PublicKey))

	image := bytes.Repeat([]byte("model "), 20000)
	m := &protocol.Manifest{Format: 1, Seq: 1, Component: "kws", Version: "1.0.0",
		Digest: sha256.Sum256(image), Size: uint64(len(image)), Epoch: 1,
		Probation: &protocol.Probation{Seconds: 30, MinInferences: 100}}
	signed, _ := signer.SignManifest(m)

	f, _ := flash.New(nodeagent.FlashSize(256<<10, 4096, 4))
	agent, _ := nodeagent.New(nodeagent.Config{NodeID: "node-1", Flash: f, Trust: trust, Models: simmodel.Runtime{}.ForAgent(), SlotSize: 256 << 10,
		Clock: &virtualClock{now: time.Unix(0, 0)}})
	ctx := context.Background()
	agent.Boot(ctx) // a blank node: no runnable model yet
	if err := agent.Install(ctx, signed, nodeagent.ReaderAtSource{R: bytes.NewReader(image)}, nil); err != nil {
		fmt.Println(err)
		return
	}
	agent.Boot(ctx)   // the new image boots on trial
	agent.Settle(ctx) // probation: 30 s and 100 inferences
	st, _ := nodeagent.ReadStatus(f, 256<<10, 4)
	fmt.Println(st.Active, st.Slots[0].Version, st.Slots[0].State, st.EpochFloor, st.LastState)
	// Output: A 1.0.0 confirmed 1 confirmed
}
