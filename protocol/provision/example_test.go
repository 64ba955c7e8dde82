package provision_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
)

// An operator seals a node's PSK under its factory secret, signs the
// bundle; the node verifies it against the operator keys it trusts and
// opens the PSK with its factory secret.
func Example() {
	operator := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)) // use sign.ParsePrivateKey on a real key
	manifestKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	factorySecret := bytes.Repeat([]byte{0x42}, 32) // known to the operator out of band
	psk := bytes.Repeat([]byte{0x77}, 32)

	sealed, _ := provision.Seal(factorySecret, "node-0001", 1, psk)
	signed, err := provision.Sign(&provision.Bundle{
		Format: provision.Format, NodeID: "node-0001", Serial: 1, Issued: 1795000000,
		Labels: map[string]string{"region": "eu-west"}, Component: "kws-model",
		Gateway:      "coaps://gw-1.example.net",
		ManifestKeys: []ed25519.PublicKey{manifestKey},
		OperatorKeys: []ed25519.PublicKey{operator.Public().(ed25519.PublicKey)},
		PSK:          sealed,
	}, operator)
	if err != nil {
		fmt.Println(err)
		return
	}

	trust, _ := sign.NewTrustStore(sign.RoleOperator, operator.Public().(ed25519.PublicKey))
	b, kid, err := provision.Verify(signed, trust)
	fmt.Println(b.NodeID, b.Serial, b.Labels["region"], b.Gateway, err)
	fmt.Println(kid == sign.KeyIDOf(operator.Public().(ed25519.PublicKey)))
	got, err := b.OpenPSK(factorySecret)
	fmt.Println(bytes.Equal(got, psk), err)
	_, err = b.OpenPSK(bytes.Repeat([]byte{0x43}, 32))
	fmt.Println(errors.Is(err, provision.ErrSeal))
	// Output:
	// node-0001 1 eu-west coaps://gw-1.example.net <nil>
	// true
	// true <nil>
	// true
}
