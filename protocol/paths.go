package protocol

import (
	"errors"
	"strings"
)

// CoAP resources of the gateway (docs/protocol.md section 5). Every CoAP
// path the gateway serves or a node asks for is built by [ImagePath] or
// [NodePath] (and, from v1.4, [DeltaPath]) and read back by [ParsePath]:
// no other code spells them.

// PathCore is the RFC 6690 resource directory of the gateway.
const PathCore = "/.well-known/core"

const (
	imagePrefix = "/m/"
	nodePrefix  = "/n/"
	deltaPrefix = "/d/"
)

// NodeResource is one of a node's resources, the last segment of
// /n/{node}/{resource} (section 5).
type NodeResource string

// The node resources of section 5.
const (
	// ResManifest is GET /n/{node}/manifest: the signed manifest the node
	// should run now, observable.
	ResManifest NodeResource = "manifest"
	// ResHello is POST /n/{node}/hello with a [Hello].
	ResHello NodeResource = "hello"
	// ResHealth is POST /n/{node}/health with a [HealthReport].
	ResHealth NodeResource = "health"
	// ResStatus is POST /n/{node}/status with a [StatusEvent].
	ResStatus NodeResource = "status"
	// ResTrust is GET /n/{node}/trust (v1.3): the signed trust update the
	// node should hold, observable like the manifest.
	ResTrust NodeResource = "trust"
)

// Valid reports whether r is one of the resources of section 5.
func (r NodeResource) Valid() bool {
	switch r {
	case ResManifest, ResHello, ResHealth, ResStatus, ResTrust:
		return true
	}
	return false
}

// PathKind tells which family of resources a [Path] names.
type PathKind uint8

// Path kinds, in the order of the table of section 5.
const (
	PathUnknown  PathKind = iota // not a resource of the contract
	PathCoreKind                 // /.well-known/core
	PathImage                    // /m/{hex sha256}
	PathNode                     // /n/{node}/{resource}
	PathDelta                    // /d/{hex sha256} (v1.4)
)

// String returns "core", "image", "node", "delta" or "other", the names the
// gateway's metrics use.
func (k PathKind) String() string {
	switch k {
	case PathCoreKind:
		return "core"
	case PathImage:
		return "image"
	case PathNode:
		return "node"
	case PathDelta:
		return "delta"
	}
	return "other"
}

// Path is a CoAP path of section 5, parsed.
type Path struct {
	Kind     PathKind
	Digest   Digest       // PathImage: the image's SHA-256; PathDelta: the delta's
	Node     string       // PathNode: a valid node id (section 0)
	Resource NodeResource // PathNode: a resource of section 5
}

// ErrNoResource is returned by [ParsePath] for a path that names no resource
// of the contract; a server answers it 4.04.
var ErrNoResource = errors.New("protocol: no such resource")

// ImagePath returns the CoAP path of a cached image, /m/{hex digest}; it is
// also the default location of a manifest (section 3, key 9).
func ImagePath(d Digest) string { return imagePrefix + d.String() }

// DeltaPath returns the CoAP path of a delta the gateway serves, /d/{hex
// digest} (v1.4, docs/protocol.md section 5), d being the SHA-256 of the
// delta's bytes.
func DeltaPath(d Digest) string { return deltaPrefix + d.String() }

// NodePath returns /n/{node}/{resource}.
func NodePath(node string, r NodeResource) string {
	return nodePrefix + node + "/" + string(r)
}

// PathKindOf classifies p without validating it further: the cheap test a
// server uses to label a request in its metrics.
func PathKindOf(p string) PathKind {
	switch {
	case p == PathCore:
		return PathCoreKind
	case len(p) > len(imagePrefix) && p[:len(imagePrefix)] == imagePrefix:
		return PathImage
	case len(p) > len(nodePrefix) && p[:len(nodePrefix)] == nodePrefix:
		return PathNode
	case len(p) > len(deltaPrefix) && p[:len(deltaPrefix)] == deltaPrefix:
		return PathDelta
	}
	return PathUnknown
}

// ParsePath reads a CoAP path of section 5 (segments joined by "/", with a
// leading "/", as go-coap's Path option gives it). A path outside the
// contract, an invalid digest, an invalid node id or an unknown node resource
// wraps [ErrNoResource].
func ParsePath(p string) (Path, error) {
	switch PathKindOf(p) {
	case PathCoreKind:
		return Path{Kind: PathCoreKind}, nil
	case PathImage:
		d, err := parsePathDigest(p[len(imagePrefix):])
		if err != nil {
			return Path{}, err
		}
		return Path{Kind: PathImage, Digest: d}, nil
	case PathDelta:
		d, err := parsePathDigest(p[len(deltaPrefix):])
		if err != nil {
			return Path{}, err
		}
		return Path{Kind: PathDelta, Digest: d}, nil
	case PathNode:
		node, res, ok := strings.Cut(p[len(nodePrefix):], "/")
		if !ok || !ValidID(node) || !NodeResource(res).Valid() {
			return Path{}, ErrNoResource
		}
		return Path{Kind: PathNode, Node: node, Resource: NodeResource(res)}, nil
	}
	return Path{}, ErrNoResource
}

// parsePathDigest reads the digest segment of an image or delta path.
func parsePathDigest(hex string) (Digest, error) {
	d, err := ParseDigest(hex)
	if err != nil {
		return Digest{}, errors.Join(ErrNoResource, err)
	}
	if strings.ContainsAny(hex, "ABCDEF") {
		// Digests are lowercase hex wherever they are text (section 0).
		// (ParseDigest took 64 hex digits: this is d.String() != hex
		// without formatting a string per request.)
		return Digest{}, ErrNoResource
	}
	return d, nil
}
