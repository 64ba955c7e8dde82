package sign_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Signing a manifest with an operator key and verifying it the way a node
// does: pick the key by kid, check the content type, then decode strictly.
func Example() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // use sign.ParsePrivateKey on a real key
	signer, _ := sign.NewSigner(priv)

	m := &protocol.Manifest{Format: 1, Seq: 7, Component: "kws-model", Version: "1.4.0", Size: 4096, Epoch: 1}
	signed, err := signer.SignManifest(m)
	if err != nil {
		fmt.Println(err)
		return
	}

	trust, _ := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	got, err := trust.VerifyManifest(signed)
	fmt.Println(got.Component, got.Version, got.Seq, err)

	signed[len(signed)-1] ^= 1 // one bit of the signature
	_, err = trust.VerifyManifest(signed)
	fmt.Println(errors.Is(err, sign.ErrSignature))
	// Output:
	// kws-model 1.4.0 7 <nil>
	// true
}
