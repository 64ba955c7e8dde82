// Package mqttpeer runs a real MQTT broker (Debian's mosquitto) for tests,
// and subscribes to it with paho to record what reaches the broker.
//
// [Start] runs mosquitto on a free loopback port and stops it when the test
// ends; [Broker.Stop] and [Broker.Restart] simulate a broker outage on the
// same port. The broker persists its sessions, queued messages and retained
// messages to [Broker.PersistenceFile], and restores them when restarted.
// [StartWith] adds a TLS listener (with a CA generated for the test) and a
// password file that turns anonymous access off.
//
// [Subscribe] (or [Broker.Subscribe] for a broker with TLS or users)
// returns a [Counter] that records every message on a topic filter, and
// [Counter.WaitFor] waits, with a deadline, for a condition on them.
// [Counter.Pause] and [Counter.Resume] take its persistent session offline
// and back. [Publish] ([Broker.Publish]) sends one QoS 1 message.
//
// When mosquitto is missing the test is skipped, or fails under CI=true:
// a test whose peer is missing fails instead of skipping.
package mqttpeer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgeota/test/testutil"
)

// Timeouts of the harness: ceilings against a hang, never the assertion,
// so they are testutil's generous one (they were 5 and 10 s, which a
// loaded two-core machine running the race detector may approach).
const (
	readyTimeout = testutil.DefaultCeiling // mosquitto accepting TCP connections
	stopTimeout  = testutil.DefaultCeiling // mosquitto exiting after SIGTERM
	mqttTimeout  = testutil.DefaultCeiling // a paho connect, subscribe or publish
)

// Options configure a broker beyond [Start]'s plain listener. The zero
// value is Start's broker.
type Options struct {
	// TLS makes the listener MQTT over TLS (URL mqtts://127.0.0.1:PORT),
	// with a server certificate for 127.0.0.1 and localhost signed by a CA
	// generated for the test, whose PEM file is [Broker.CAFile].
	TLS bool
	// Users, when not empty, turns anonymous access off (allow_anonymous
	// false): only these user names may connect, each with its password,
	// written to a password file in mosquitto's hashed format. The
	// harness's own clients ([Broker.Subscribe], [Broker.Publish]) connect
	// as a user of their own.
	Users map[string]string
}

// Broker is a mosquitto process listening on 127.0.0.1.
type Broker struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	opts Options
	self dialer      // how the harness's own clients connect
	log  *syncBuffer // mosquitto's output, shown when the test fails

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start runs mosquitto on a free 127.0.0.1 port with a generated
// configuration (one plain listener on that port, anonymous clients
// allowed, persistence in the test's directory so that sessions, queued
// QoS 1 messages and retained messages survive Restart, logging to the
// test log when the test fails), and waits until it accepts TCP
// connections. t.Cleanup stops it.
//
// Start skips the test when mosquitto is not installed, or fails it when
// the environment variable CI is "true".
func Start(tb testing.TB) *Broker {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is [Start] with a TLS listener or a password file, as o asks.
func StartWith(tb testing.TB, o Options) *Broker {
	tb.Helper()
	bin := findMosquitto()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("mosquitto not found (Debian package mosquitto); CI needs it")
		}
		tb.Skip("mosquitto not found (Debian package mosquitto)")
	}
	b := &Broker{tb: tb, bin: bin, dir: tb.TempDir(), opts: o, log: new(syncBuffer)}
	if err := b.writeSecrets(); err != nil {
		tb.Fatalf("mqttpeer: %v", err)
	}
	tb.Cleanup(func() {
		b.Stop()
		if tb.Failed() {
			tb.Logf("mosquitto on port %d logged:\n%s", b.port, b.log.String())
		}
	})
	// A free port can be taken between probing and mosquitto's bind:
	// Retry tries others.
	testutil.Retry(tb, "tcp", func(port int) error {
		b.port = port
		return b.start()
	})
	return b
}

// URL returns the broker's address for paho: tcp://127.0.0.1:PORT, or
// mqtts://127.0.0.1:PORT with [Options.TLS].
func (b *Broker) URL() string {
	if b.opts.TLS {
		return "mqtts://" + b.addr()
	}
	return "tcp://" + b.addr()
}

// CAFile returns the PEM file of the CA that signed the broker's TLS
// certificate ([Options.TLS]), or "" without TLS.
func (b *Broker) CAFile() string {
	if !b.opts.TLS {
		return ""
	}
	return filepath.Join(b.dir, "ca.pem")
}

// PersistenceFile returns the file mosquitto saves its in-memory database
// to (sessions, subscriptions, queued and retained messages): every second
// while it runs, and when it stops. Restart restores the broker from it.
func (b *Broker) PersistenceFile() string { return filepath.Join(b.dir, "mosquitto.db") }

func (b *Broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Stop sends mosquitto SIGTERM and waits for it to exit (killing it after
// 5 seconds). The broker keeps its port for [Broker.Restart]. Stopping a
// stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return
	}
	_ = b.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(stopTimeout):
		_ = b.proc.Process.Kill()
		<-b.done
		b.tb.Errorf("mqttpeer: mosquitto on port %d ignored SIGTERM for %v; killed", b.port, stopTimeout)
	}
	b.proc, b.done = nil, nil
	// A broker that cannot save its database would come back empty from
	// Restart: the test would no longer exercise what it claims.
	if strings.Contains(b.log.String(), saveError) {
		b.tb.Errorf("mqttpeer: mosquitto on port %d could not save its database to %s (%q in its log)", b.port, b.PersistenceFile(), saveError)
	}
}

// Freeze stops mosquitto with SIGSTOP: its connections stay open and it
// answers nothing (no PUBACK, no PINGRESP), as a broker that hangs does.
// The broker is thawed (SIGCONT) when the test ends, before it is stopped.
func (b *Broker) Freeze() {
	b.tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		b.tb.Fatal("mqttpeer: Freeze of a stopped broker")
	}
	if err := b.proc.Process.Signal(syscall.SIGSTOP); err != nil {
		b.tb.Fatalf("mqttpeer: SIGSTOP: %v", err)
	}
	b.tb.Cleanup(b.Thaw)
}

// Thaw resumes a broker stopped by [Broker.Freeze]; thawing a running or
// stopped broker does nothing.
func (b *Broker) Thaw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		_ = b.proc.Process.Signal(syscall.SIGCONT)
	}
}

// saveError starts mosquitto's log line when it cannot write its database.
const saveError = "Error saving in-memory database"

// Restart starts mosquitto again on the same port, stopping it first if it
// is running, and waits until it accepts TCP connections. Clients that
// reconnect by themselves (paho's auto-reconnect) find it at the same URL.
// It fails the test when mosquitto does not come back.
func (b *Broker) Restart() {
	b.tb.Helper()
	b.Stop()
	// The port may linger for a moment after the old process; retry.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := b.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.tb.Fatalf("mqttpeer: restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start runs mosquitto on b.port and waits until it accepts connections.
func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	conf := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(b.config()), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "--- mqttpeer: starting %s on port %d\n", b.bin, b.port)
	cmd := exec.Command(b.bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", b.addr(), time.Second)
		if err == nil {
			c.Close()
			select {
			case <-done: // someone else answered on the port mosquitto could not bind
				return fmt.Errorf("mosquitto on port %d exited (%v)", b.port, cmd.ProcessState)
			default:
			}
			b.proc, b.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mosquitto on port %d exited (%v) before accepting connections", b.port, cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("mosquitto on port %d did not accept connections within %v", b.port, readyTimeout)
		}
	}
}

// config is mosquitto's configuration file.
//
// Started as root, mosquitto drops its privileges to the user named by
// "user" (by default "mosquitto"), which may not enter the test's 0700
// temporary directory: it could then read no certificate or password file
// and save no database ("Error saving in-memory database ... Permission
// denied"), and a Restart came back empty. Naming the user that runs the
// test keeps it in that user (as root, "root" means no change; as anyone
// else, mosquitto cannot change user and ignores the option).
func (b *Broker) config() string {
	var sb strings.Builder
	sb.WriteString("# generated by edgeota/test/mqttpeer\n")
	if u, err := user.Current(); err == nil {
		fmt.Fprintf(&sb, "user %s\n", u.Username)
	}
	fmt.Fprintf(&sb, "listener %d 127.0.0.1\n", b.port)
	if b.opts.TLS {
		fmt.Fprintf(&sb, "cafile %s\ncertfile %s\nkeyfile %s\n",
			filepath.Join(b.dir, "ca.pem"), filepath.Join(b.dir, "server.pem"), filepath.Join(b.dir, "server.key"))
	}
	if len(b.opts.Users) > 0 {
		fmt.Fprintf(&sb, "allow_anonymous false\npassword_file %s\n", filepath.Join(b.dir, "passwd"))
	} else {
		sb.WriteString("allow_anonymous true\n")
	}
	fmt.Fprintf(&sb, `persistence true
persistence_location %s/
autosave_interval 1
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
`, b.dir)
	return sb.String()
}

// writeSecrets writes what [Options] ask for: the CA, the server's
// certificate and key, and the password file; and sets how the harness's
// own clients connect.
func (b *Broker) writeSecrets() error {
	if b.opts.TLS {
		pool, err := writeCerts(b.dir)
		if err != nil {
			return err
		}
		b.self.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if len(b.opts.Users) > 0 {
		b.self.user, b.self.pass = "mqttpeer", randomHex(16)
		users := map[string]string{b.self.user: b.self.pass}
		for u, p := range b.opts.Users {
			users[u] = p
		}
		if err := os.WriteFile(filepath.Join(b.dir, "passwd"), passwordFile(users), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// passwordFile is a mosquitto 2 password file: one "user:$7$101$SALT$HASH"
// line a user, HASH being PBKDF2-HMAC-SHA512 of the password with the
// 12-byte SALT and 101 iterations, both in standard base64 (what
// mosquitto_passwd writes).
func passwordFile(users map[string]string) []byte {
	var out bytes.Buffer
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		salt := make([]byte, 12)
		rand.Read(salt)
		hash, err := pbkdf2.Key(sha512.New, users[u], salt, 101, sha512.Size)
		if err != nil {
			panic(err) // only for a key length beyond what SHA-512 allows
		}
		fmt.Fprintf(&out, "%s:$7$101$%s$%s\n", u, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(hash))
	}
	return out.Bytes()
}

// writeCerts generates a CA and a server certificate for 127.0.0.1 and
// localhost signed by it (ECDSA P-256, valid for a day), writes ca.pem,
// server.pem and server.key into dir, and returns a pool holding the CA.
func writeCerts(dir string) (*x509.CertPool, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mqttpeer test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

// findMosquitto looks in PATH, then where Debian installs it (/usr/sbin is
// not in every user's PATH).
func findMosquitto() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Message is one message a [Counter] received.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Counter records, in order, every message published on a topic filter.
// It is safe for concurrent use.
type Counter struct {
	filter string
	d      dialer
	id     string // client id, the same across Pause and Resume
	mu     sync.Mutex
	cl     mqtt.Client // nil while paused
	msgs   []Message
}

// Subscribe connects a paho client (its own client id, a persistent
// session) to the plain broker at url and subscribes with QoS 1 to filter,
// returning once the broker has acknowledged the subscription. The client
// reconnects by itself (within about a second of the broker coming back)
// and subscribes again each time. t.Cleanup disconnects it.
func Subscribe(tb testing.TB, url, filter string) *Counter {
	tb.Helper()
	return dialer{url: url}.subscribe(tb, filter)
}

// Subscribe is [Subscribe] to b, over TLS and as the harness's own user
// when b has them.
func (b *Broker) Subscribe(tb testing.TB, filter string) *Counter {
	tb.Helper()
	d := b.self
	d.url = b.URL()
	return d.subscribe(tb, filter)
}

// Publish is [Publish] to b, over TLS and as the harness's own user when b
// has them.
func (b *Broker) Publish(tb testing.TB, topic string, payload []byte, retained bool) {
	tb.Helper()
	d := b.self
	d.url = b.URL()
	d.publish(tb, topic, payload, retained)
}

// dialer says how a harness client reaches a broker.
type dialer struct {
	url        string
	tls        *tls.Config // nil: plain TCP
	user, pass string      // "": anonymous
}

func (d dialer) subscribe(tb testing.TB, filter string) *Counter {
	tb.Helper()
	c := &Counter{filter: filter, d: d, id: "mqttpeer-sub-" + randomHex(4)}
	c.connect(tb)
	tb.Cleanup(func() {
		c.mu.Lock()
		cl := c.cl
		c.mu.Unlock()
		if cl != nil {
			cl.Disconnect(100)
		}
	})
	return c
}

// connect connects c's client and waits for its subscription.
func (c *Counter) connect(tb testing.TB) {
	tb.Helper()
	subscribed := make(chan error, 1)
	opts := c.d.clientOptions(c.id).
		// A persistent session's queued messages may arrive before the
		// subscription below has registered its handler: paho hands them
		// to the default handler, or drops them without one.
		SetDefaultPublishHandler(c.record).
		SetOnConnectHandler(func(cl mqtt.Client) {
			// Runs on its own goroutine: waiting here is allowed.
			err := waitToken(cl.Subscribe(c.filter, 1, c.record))
			select {
			case subscribed <- err:
			default:
			}
		})
	cl := mqtt.NewClient(opts)
	if err := waitToken(cl.Connect()); err != nil {
		tb.Fatalf("mqttpeer: connect to %s: %v", c.d.url, err)
	}
	c.mu.Lock()
	c.cl = cl
	c.mu.Unlock()
	select {
	case err := <-subscribed:
		if err != nil {
			tb.Fatalf("mqttpeer: subscribe to %q: %v", c.filter, err)
		}
	case <-time.After(mqttTimeout):
		tb.Fatalf("mqttpeer: subscribe to %q: no SUBACK within %v", c.filter, mqttTimeout)
	}
}

// ClientID returns the MQTT client id of c's session.
func (c *Counter) ClientID() string { return c.id }

// Pause disconnects c cleanly. Its session stays on the broker (it is
// persistent), which queues the QoS 1 messages of c's filter for it until
// [Counter.Resume]; a broker restart in between keeps them when the broker
// saved them to its persistence file.
func (c *Counter) Pause() {
	c.mu.Lock()
	cl := c.cl
	c.cl = nil
	c.mu.Unlock()
	if cl != nil {
		cl.Disconnect(100)
	}
}

// Resume connects c again with the same client id, after [Counter.Pause]:
// the broker delivers what it queued for it meanwhile.
func (c *Counter) Resume(tb testing.TB) {
	tb.Helper()
	c.connect(tb)
}

func (c *Counter) record(_ mqtt.Client, m mqtt.Message) {
	msg := Message{Topic: m.Topic(), Payload: bytes.Clone(m.Payload()), Retained: m.Retained()}
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	c.mu.Unlock()
}

// Messages returns a copy of the messages received so far, in order.
func (c *Counter) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// WaitFor polls cond with the messages received so far until it returns
// true, and fails the test when timeout passes first. Call it from the
// test's goroutine.
func (c *Counter) WaitFor(tb testing.TB, cond func([]Message) bool, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := c.Messages()
		if cond(msgs) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mqttpeer: condition on %q not met within %v; %d message(s) received:%s",
				c.filter, timeout, len(msgs), summary(msgs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// summary lists the last messages' topics and sizes for a failure message.
func summary(msgs []Message) string {
	const last = 20
	var sb strings.Builder
	if len(msgs) > last {
		fmt.Fprintf(&sb, "\n  ... %d earlier", len(msgs)-last)
		msgs = msgs[len(msgs)-last:]
	}
	for _, m := range msgs {
		fmt.Fprintf(&sb, "\n  %s (%d bytes", m.Topic, len(m.Payload))
		if m.Retained {
			sb.WriteString(", retained")
		}
		sb.WriteString(")")
	}
	return sb.String()
}

// Publish sends one QoS 1 message to the plain broker at url with a fresh
// paho client and returns when the broker has acknowledged it. An empty
// retained payload clears the topic's retained message.
func Publish(tb testing.TB, url, topic string, payload []byte, retained bool) {
	tb.Helper()
	dialer{url: url}.publish(tb, topic, payload, retained)
}

func (d dialer) publish(tb testing.TB, topic string, payload []byte, retained bool) {
	tb.Helper()
	url := d.url
	cl := mqtt.NewClient(d.clientOptions("mqttpeer-pub-" + randomHex(4)).SetCleanSession(true))
	if err := waitToken(cl.Connect()); err != nil {
		tb.Fatalf("mqttpeer: connect to %s: %v", url, err)
	}
	defer cl.Disconnect(100)
	if err := waitToken(cl.Publish(topic, 1, retained, payload)); err != nil {
		tb.Fatalf("mqttpeer: publish to %s: %v", topic, err)
	}
}

// clientOptions are paho options for a test client with client id id that
// reconnects quickly after a broker restart. Its session is persistent
// (CleanSession false): QoS 1 messages published while it is away, a
// broker restart included, are queued for it and delivered when it is back.
func (d dialer) clientOptions(id string) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(d.url).
		SetClientID(id).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(time.Second).
		SetConnectTimeout(mqttTimeout).
		SetWriteTimeout(mqttTimeout)
	if d.tls != nil {
		o.SetTLSConfig(d.tls)
	}
	if d.user != "" {
		o.SetUsername(d.user).SetPassword(d.pass)
	}
	return o
}

// waitToken waits for a paho token with a deadline and returns its error,
// including a refused subscription (SUBACK 0x80).
func waitToken(t mqtt.Token) error {
	if !t.WaitTimeout(mqttTimeout) {
		return fmt.Errorf("no answer within %v", mqttTimeout)
	}
	if err := t.Error(); err != nil {
		return err
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("broker refused the subscription to %q", f)
			}
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
