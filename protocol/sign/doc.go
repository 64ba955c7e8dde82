// Package sign signs and verifies edgeota documents as tagged COSE_Sign1
// envelopes with Ed25519 (COSE alg EdDSA) or ECDSA P-256 (COSE alg ES256)
// (docs/protocol.md section 1), using github.com/veraison/go-cose to sign.
//
// Every envelope carries, in its protected header, the algorithm (label 1:
// -8 EdDSA or -7 ES256), the signer's key id (label 4: the first 8 bytes
// of SHA-256 over the raw public key, see [KeyIDOf] and [RawPublicKey])
// and the content type of the document (label 3). A [TrustStore] picks the
// key by kid and requires the algorithm of that key, so that a kid binds
// its algorithm; it rejects unknown kids, other algorithms, another
// content type, untagged, detached or malformed input, each with its own
// sentinel error so that tools can name the reason.
//
// A [Signer] is built from any crypto.Signer whose public key is Ed25519
// or P-256: a key in memory, or one held by a hardware token that never
// lets it out. ES256 signatures are COSE's fixed 64-byte r||s.
//
// Keys travel as PEM files: PKCS#8 for private keys ([MarshalPrivateKey],
// [ParsePrivateKey]) and PKIX for public keys ([MarshalPublicKey],
// [ParsePublicKey]); [ParseRawPublicKey] reads the raw form. The package
// reads no files itself.
package sign
