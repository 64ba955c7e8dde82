package protocol

import (
	"errors"
	"strings"
)

// CoAP resources of the gateway (docs/protocol.md section 5). Every CoAP
// path the gateway serves or a node asks for is built by [ImagePath] or
// [NodePath] and read back by [ParsePath]: no other code spells them.

// PathCore is the RFC 6690 resource directory of the gateway.
const PathCore = "/.well-known/core"

const (
	imagePrefix = "/m/"
	nodePrefix  = "/n/"
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
)

// String returns "core", "image", "node" or "other", the names the gateway's
// metrics use.
func (k PathKind) String() string {
	switch k {
	case PathCoreKind:
		return "core"
	case PathImage:
		return "image"
	case PathNode:
		return "node"
	}
	return "other"
}

// Path is a CoAP path of section 5, parsed.
type Path struct {
	Kind     PathKind
	Digest   Digest       // PathImage: the image's SHA-256
	Node     string       // PathNode: a valid node id (section 0)
	Resource NodeResource // PathNode: a resource of section 5
}

// ErrNoResource is returned by [ParsePath] for a path that names no resource
// of the contract; a server answers it 4.04.
var ErrNoResource = errors.New("protocol: no such resource")

// ImagePath returns the CoAP path of a cached image, /m/{hex digest}; it is
// also the default location of a manifest (section 3, key 9).
func ImagePath(d Digest) string { return imagePrefix + d.String() }

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
		hex := p[len(imagePrefix):]
		d, err := ParseDigest(hex)
		if err != nil {
			return Path{}, errors.Join(ErrNoResource, err)
		}
		if d.String() != hex {
			// Digests are lowercase hex wherever they are text (section 0).
			return Path{}, ErrNoResource
		}
		return Path{Kind: PathImage, Digest: d}, nil
	case PathNode:
		node, res, ok := strings.Cut(p[len(nodePrefix):], "/")
		if !ok || !ValidID(node) || !NodeResource(res).Valid() {
			return Path{}, ErrNoResource
		}
		return Path{Kind: PathNode, Node: node, Resource: NodeResource(res)}, nil
	}
	return Path{}, ErrNoResource
}
