package store_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Caching a signed model and serving it block by block, the way the CoAP
// endpoint does.
func Example() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "gateway.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	// An operator signs a manifest for the image; the gateway trusts the key.
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signer, _ := sign.NewSigner(priv)
	trust, _ := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	image := bytes.Repeat([]byte("weights "), 1000)
	signed, _ := signer.SignManifest(&protocol.Manifest{Format: 1, Seq: 1, Component: "kws-model", Version: "1.0.0",
		Digest: sha256.Sum256(image), Size: uint64(len(image)), Epoch: 1})

	m, err := db.PutModel(signed, bytes.NewReader(image), trust)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Manifest.Component, m.Manifest.Version, m.Size)

	// Block 7 of 1024 bytes is the last, short one; block 8 is past the end.
	block := make([]byte, 1024)
	n, err := db.ReadAt(m.Digest, block, 7*1024)
	fmt.Println(n, err, bytes.Equal(block[:n], image[7*1024:]))
	n, err = db.ReadAt(m.Digest, block, 8*1024)
	fmt.Println(n, err == io.EOF)
	// Output:
	// kws-model 1.0.0 8000
	// 832 EOF true
	// 0 true
}
