package admin_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"os"

	"edgeota/gateway"
	"edgeota/gateway/admin"
)

// A client of a gateway's admin API: its health, its nodes, and a
// rollout it does not have. The gateway here runs in-process on loopback
// ports, with a token.
func ExampleClient() {
	dir, err := os.MkdirTemp("", "edgeota-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const token = "an-example-token-of-32-characters"
	trust := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	g, err := gateway.New(gateway.Config{DataDir: dir, Trust: []ed25519.PublicKey{trust}, GatewayID: "gw-1",
		CoAPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", AdminToken: token})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { stop(); <-done }()

	c, err := admin.NewClient("http://"+g.AdminAddr().String(), admin.WithToken(token))
	if err != nil {
		log.Fatal(err)
	}
	h, err := c.Health(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.GatewayID, h.Status)
	nodes, err := c.Nodes(ctx, admin.NodeQuery{Labels: map[string]string{"site": "north"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(nodes.Total, "nodes")
	_, err = c.Rollout(ctx, "kws-1.4")
	fmt.Println(errors.Is(err, admin.ErrNotFound), err)
	// Output:
	// gw-1 ok
	// 0 nodes
	// true gateway refused (not found): rollout: no such rollout
}
