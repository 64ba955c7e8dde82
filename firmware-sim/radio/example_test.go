package radio_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"edgeota/firmware-sim/radio"
)

// A node talks to a gateway through a relay that adds 5 ms each way.
func Example() {
	// A tiny UDP echo server stands in for the gateway.
	gateway, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer gateway.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := gateway.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			gateway.WriteToUDPAddrPort(buf[:n], from)
		}
	}()

	link := radio.Link{Latency: 5 * time.Millisecond}
	relay, err := radio.New("127.0.0.1:0", gateway.LocalAddr().String(), radio.Config{Up: link, Down: link, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()

	// The node sends to the relay as if it were the gateway.
	node, err := net.Dial("udp", relay.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	start := time.Now()
	if _, err := node.Write([]byte("hello gateway")); err != nil {
		log.Fatal(err)
	}
	node.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := node.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, at least 10ms later: %v\n", buf[:n], time.Since(start) >= 10*time.Millisecond)

	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	st := relay.Stats()
	fmt.Printf("up: in=%d delivered=%d dropped=%d bytes=%d\n", st.Up.In, st.Up.Delivered, st.Up.Dropped, st.Up.BytesDelivered)
	fmt.Printf("down: in=%d delivered=%d dropped=%d bytes=%d\n", st.Down.In, st.Down.Delivered, st.Down.Dropped, st.Down.BytesDelivered)
	// Output:
	// hello gateway, at least 10ms later: true
	// up: in=1 delivered=1 dropped=0 bytes=13
	// down: in=1 delivered=1 dropped=0 bytes=13
}

// Changing a link while the relay runs starts and ends an outage.
func ExampleRelay_SetLink() {
	relay, err := radio.New("127.0.0.1:0", "127.0.0.1:5683", radio.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer relay.Close()

	down := func(time.Time) bool { return true }
	fmt.Println(relay.SetLink(radio.Link{Outage: down}, radio.Link{Outage: down}))
	fmt.Println(relay.SetLink(radio.Link{}, radio.Link{}))
	fmt.Println(relay.SetLink(radio.Link{Loss: 1.5}, radio.Link{}))
	// Output:
	// <nil>
	// <nil>
	// radio: up: invalid link: Loss 1.5 not in [0, 1]
}
