package outbox_test

import (
	"fmt"
	"os"
	"path/filepath"

	"edgeota/gateway/internal/outbox"
)

// A CoAP handler appends a report and answers once it is durable; the MQTT
// publisher peeks a batch, publishes it, and acks it on PUBACK.
func Example() {
	dir, _ := os.MkdirTemp("", "outbox-example")
	defer os.RemoveAll(dir)
	o, err := outbox.Open(outbox.Config{Path: filepath.Join(dir, "outbox.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer o.Close()

	// The CoAP side: 2.04 only after done(nil); 5.03 with Max-Age on ErrFull.
	for i, node := range []string{"node-1", "node-2", "node-1"} {
		durable := make(chan error, 1)
		if err := o.Append(outbox.KindHealth, node, []byte{0xa1, 0x01, byte(i)}, func(err error) { durable <- err }); err != nil {
			fmt.Println("5.03:", err)
			continue
		}
		if err := <-durable; err != nil {
			fmt.Println("5.00:", err)
			continue
		}
		fmt.Println("2.04", node)
	}

	// The MQTT side.
	batch, err := o.Peek(outbox.KindHealth, 1024)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, it := range batch {
		fmt.Printf("publish %d %s %x\n", it.Seq, it.Node, it.Data)
	}
	// ... the broker sends PUBACK ...
	if err := o.Ack(batch); err != nil {
		fmt.Println(err)
		return
	}
	st := o.Stats()
	fmt.Println("queued", st.Health.Depth, "acked", st.Acked)
	// Output:
	// 2.04 node-1
	// 2.04 node-2
	// 2.04 node-1
	// publish 1 node-1 a10100
	// publish 2 node-2 a10101
	// publish 3 node-1 a10102
	// queued 0 acked 3
}
