package gwlink

import (
	"context"
	"crypto/sha256"
	"fmt"

	"edgeota/protocol"
)

// Example says Hello, asks for the manifest, reads the image it names and
// follows later assignments, against the test gateway.
func Example() {
	g, err := startGateway("127.0.0.1:0", false)
	if err != nil {
		panic(err)
	}
	defer g.stop()
	img := newTestImage(5000, 1)
	g.addImage(img)
	g.setManifest("node-1", []byte("signed manifest 1"))

	ctx := context.Background()
	c, err := Dial(ctx, g.addr, "node-1")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	hello := &protocol.Hello{NodeID: "node-1", Labels: map[string]string{}, AgentVersion: "0.1.0", Component: "kws-model"}
	if err := c.Hello(ctx, hello); err != nil {
		panic(err)
	}
	signed, etag, err := c.Manifest(ctx)
	fmt.Printf("manifest %q, ETag %d bytes, %v\n", signed, len(etag), err)

	buf := make([]byte, len(img.data))
	n, err := c.Image(img.digest, int64(len(buf))).ReadAt(ctx, buf, 0)
	fmt.Println("image:", n, err, sha256.Sum256(buf) == img.digest)

	wctx, cancel := context.WithCancel(ctx)
	seen := 0
	err = c.Watch(wctx, func(signed []byte) {
		fmt.Printf("assigned %q\n", signed)
		if seen++; seen == 1 {
			g.setManifest("node-1", []byte("signed manifest 2"))
		} else {
			cancel()
		}
	})
	fmt.Println("watch:", err)
	// Output:
	// manifest "signed manifest 1", ETag 8 bytes, <nil>
	// image: 5000 <nil> true
	// assigned "signed manifest 1"
	// assigned "signed manifest 2"
	// watch: context canceled
}
