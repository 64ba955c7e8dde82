package mqttpeer

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
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

	lost := make(chan struct{}, 1)
	pub := mqtt.NewClient(dialer{url: url}.clientOptions("mqttpeer-test-" + randomHex(4)).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			select {
			case lost <- struct{}{}:
			default:
			}
		}))
	if err := waitToken(pub.Connect()); err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(100)

	b.Stop()
	// A publish racing paho's discovery of the lost connection fails
	// ("use of closed network connection"); once paho knows, it queues.
	select {
	case <-lost:
	case <-time.After(mqttTimeout):
		t.Fatalf("the publisher did not notice the broker stop within %v", mqttTimeout)
	}
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

// TestQueueRestoredFromDisk: a message queued for a paused persistent
// session is in the persistence file when the broker stops, and reaches
// the session after a restart: only the file can have carried it across.
func TestQueueRestoredFromDisk(t *testing.T) {
	b := Start(t)
	c := Subscribe(t, b.URL(), "queue/#")
	c.Pause()
	payload := []byte("queued-while-paused-" + randomHex(8))
	Publish(t, b.URL(), "queue/1", payload, false)
	b.Stop()
	db, err := os.ReadFile(b.PersistenceFile())
	if err != nil {
		t.Fatalf("mosquitto saved no database: %v", err)
	}
	if !bytes.Contains(db, []byte(c.ClientID())) || !bytes.Contains(db, payload) {
		t.Fatalf("the database (%d bytes) lacks the paused session %s or its queued message", len(db), c.ClientID())
	}
	b.Restart()
	c.Resume(t)
	c.WaitFor(t, func(ms []Message) bool { return len(ms) == 1 }, 10*time.Second)
	if m := c.Messages()[0]; m.Topic != "queue/1" || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("got %s %q, want the queued message", m.Topic, m.Payload)
	}
}

// TestTLSAndUsers: a broker with a TLS listener and a password file
// accepts a user with its password over TLS (verified against the test's
// CA) and refuses a wrong password, anonymous clients and plain TCP.
func TestTLSAndUsers(t *testing.T) {
	b := StartWith(t, Options{TLS: true, Users: map[string]string{"gw": "right horse battery"}})
	if !strings.HasPrefix(b.URL(), "mqtts://127.0.0.1:") {
		t.Fatalf("URL %q, want mqtts://127.0.0.1:PORT", b.URL())
	}
	pem, err := os.ReadFile(b.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CAFile holds no certificate")
	}
	c := b.Subscribe(t, "secure/#")
	tlsc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tests := []struct {
		name, url, user, pass string
		tls                   *tls.Config
		wantErr               bool
	}{
		{"user over TLS", b.URL(), "gw", "right horse battery", tlsc, false},
		{"wrong password", b.URL(), "gw", "wrong", tlsc, true},
		{"anonymous", b.URL(), "", "", tlsc, true},
		{"plain TCP", "tcp://" + strings.TrimPrefix(b.URL(), "mqtts://"), "gw", "right horse battery", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mqtt.NewClientOptions().AddBroker(tt.url).SetClientID("tls-test-" + randomHex(4)).
				SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
			if tt.tls != nil {
				o.SetTLSConfig(tt.tls)
			}
			if tt.user != "" {
				o.SetUsername(tt.user).SetPassword(tt.pass)
			}
			cl := mqtt.NewClient(o)
			err := waitToken(cl.Connect())
			if (err != nil) != tt.wantErr {
				t.Fatalf("connect: err %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer cl.Disconnect(100)
			if err := waitToken(cl.Publish("secure/"+tt.name, 1, false, []byte("x"))); err != nil {
				t.Fatal(err)
			}
			c.WaitFor(t, func(ms []Message) bool { return len(ms) == 1 && ms[0].Topic == "secure/"+tt.name }, 5*time.Second)
		})
	}
}
