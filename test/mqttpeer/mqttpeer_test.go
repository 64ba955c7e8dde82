package mqttpeer

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestPublishReceive(t *testing.T) {
	b := Start(t)
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") {
		t.Fatalf("URL %q, want tcp://127.0.0.1:PORT", b.URL())
	}
	c := Subscribe(t, b.URL(), "edgeota/v1/gw/+/#")
	want := []Message{
		{Topic: "edgeota/v1/gw/gw-1/health", Payload: []byte{0x80}},
		{Topic: "edgeota/v1/gw/gw-1/events", Payload: []byte{0x80, 0x00}},
		{Topic: "edgeota/v1/gw/gw-2/state", Payload: []byte("online")},
	}
	Publish(t, b.URL(), "other/topic", []byte("not counted"), false)
	for _, m := range want {
		Publish(t, b.URL(), m.Topic, m.Payload, false)
	}
	c.WaitFor(t, func(ms []Message) bool { return len(ms) >= len(want) }, 5*time.Second)
	got := c.Messages()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Topic != want[i].Topic || !bytes.Equal(got[i].Payload, want[i].Payload) || got[i].Retained {
			t.Errorf("message %d: got %s %q retained=%v, want %s %q", i, got[i].Topic, got[i].Payload, got[i].Retained, want[i].Topic, want[i].Payload)
		}
	}
}

func TestRetainedReachesLateSubscriber(t *testing.T) {
	b := Start(t)
	Publish(t, b.URL(), "edgeota/v1/gw/gw-1/state", []byte("online"), true)
	c := Subscribe(t, b.URL(), "edgeota/v1/gw/gw-1/state")
	c.WaitFor(t, func(ms []Message) bool { return len(ms) == 1 }, 5*time.Second)
	if m := c.Messages()[0]; string(m.Payload) != "online" || !m.Retained {
		t.Fatalf("got %q retained=%v, want the retained \"online\"", m.Payload, m.Retained)
	}
}

// TestStopRestartSamePort stops the broker, publishes through a paho client
// that is reconnecting, restarts the broker, and checks that the port and
// URL are the same and that both that publisher and a Counter got through.
func TestStopRestartSamePort(t *testing.T) {
	b := Start(t)
	url := b.URL()
	c := Subscribe(t, url, "outage/#")
	Publish(t, url, "outage/before", []byte("1"), false)
	c.WaitFor(t, func(ms []Message) bool { return len(ms) == 1 }, 5*time.Second)

	pub := mqtt.NewClient(clientOptions(url, "mqttpeer-test-"))
	if err := waitToken(pub.Connect()); err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(100)

	b.Stop()
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), time.Second); err == nil {
		conn.Close()
		t.Fatal("the port still accepts connections after Stop")
	}
	b.Stop() // stopping twice is harmless
	// Published while the broker is down: paho keeps it and sends it after
	// reconnecting. Retained, so that the Counter gets it whichever of the
	// two clients reconnects first.
	tok := pub.Publish("outage/during", 1, true, []byte("2"))

	b.Restart()
	if b.URL() != url {
		t.Fatalf("URL after restart %q, want %q", b.URL(), url)
	}
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish queued during the outage: done=%v err=%v", tok.WaitTimeout(0), tok.Error())
	}
	c.WaitFor(t, func(ms []Message) bool {
		for _, m := range ms {
			if m.Topic == "outage/during" && string(m.Payload) == "2" {
				return true
			}
		}
		return false
	}, 10*time.Second)
	if got := c.Messages()[0]; got.Topic != "outage/before" {
		t.Fatalf("first message %s, want outage/before", got.Topic)
	}
}

func TestRestartWhileRunning(t *testing.T) {
	b := Start(t)
	url := b.URL()
	b.Restart()
	if b.URL() != url {
		t.Fatalf("URL after restart %q, want %q", b.URL(), url)
	}
	c := Subscribe(t, url, "x")
	Publish(t, url, "x", []byte("y"), false)
	c.WaitFor(t, func(ms []Message) bool { return len(ms) == 1 }, 5*time.Second)
}
