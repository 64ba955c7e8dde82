// Package sign signs and verifies edgeota documents as tagged COSE_Sign1
// envelopes with Ed25519 (docs/protocol.md section 1), using
// github.com/veraison/go-cose.
//
// Every envelope carries, in its protected header, the algorithm EdDSA
// (label 1, value -8), the signer's key id (label 4: the first 8 bytes of
// SHA-256 over the raw public key, see [KeyIDOf]) and the content type of
// the document (label 3). A [TrustStore] picks the key by kid and rejects
// unknown kids, other algorithms, another content type, untagged,
// detached or malformed input, each with its own sentinel error so that
// tools can name the reason.
//
// Keys travel as PEM files: PKCS#8 for private keys ([MarshalPrivateKey],
// [ParsePrivateKey]) and PKIX for public keys ([MarshalPublicKey],
// [ParsePublicKey]). The package reads no files itself.
package sign
