package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/spf13/cobra"

	"edgeota/protocol"
)

// watchFlags are the flags of edgeota watch.
type watchFlags struct {
	conn    mqttConnFlags
	gateway string
	asJSON  bool
}

func newWatchCmd() *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch --mqtt URL [--gateway-id ID] [--mqtt-prefix edgeota/v1] [--json]",
		Short: "Print what gateways publish over MQTT: health, status events, rollouts, state",
		Long: `Subscribe to the MQTT topics of one gateway (--gateway-id) or of every
gateway, and print one line per node health report, node status event,
rollout status and gateway state change, until interrupted (Ctrl-C).

Topics (QoS 1), under --mqtt-prefix (default edgeota/v1), with GW the gateway id
or + for every gateway:
  PREFIX/gw/GW/health        CBOR batches of health reports
  PREFIX/gw/GW/events        CBOR batches of status events
  PREFIX/gw/GW/rollouts/+    JSON rollout status, retained
  PREFIX/gw/GW/state         online or offline (the gateway's last will), retained

Lines look like:
  gw-1 health node-7 boot 3 #12 seq 42 slot A: 600 inferences, 3 errors, p50 12.0ms p99 41.0ms, cpu 35.0%, ram 176 KiB, up 2h0m0s
  gw-1 event node-7 boot 3 #4: reverted seq 42 (probation latency: p99 93000 us over 80000)
  gw-1 rollout kws-1.4: {...the status JSON, on one line...}
  gw-1 state online (retained)
"#12" is the report or event number within the node's boot. "(retained)"
marks what the broker kept from before the subscription (rollouts and
state, sent again after every reconnection) rather than news.

--json prints one JSON object per line (NDJSON) instead, with "gateway",
"topic", "kind" (health, event, rollout or state) and "retained" (only when
true), plus: the fields of edgeota inspect for a health report or status
event; "deployment" and "status" (the JSON as published, null when the
retained status was cleared) for a rollout; "state" for a state change.

A payload that does not decode is reported on stderr, naming its topic and
the error, and skipped. Messages are shown as they arrive: a broker
redelivery (QoS 1) can show a report twice; (node, boot, number) tells.

The broker URL is tcp://HOST[:1883] or, with TLS, ssl://HOST[:8883]
(mqtt:// and mqtts:// are the same). TLS verifies the broker against the
system roots or --mqtt-ca; --mqtt-cert and --mqtt-key give a client
certificate. Prefer --mqtt-password-file to --mqtt-password, which other users of
the machine can see in the process list. The watcher connects with a fresh
client id and a clean session: it fails at once when the first connection
fails, and afterwards reconnects by itself, logging outages on stderr;
messages published while it was disconnected are not shown.`,
		Example: `  edgeota watch --mqtt tcp://localhost:1883
  edgeota watch --mqtt ssl://broker.example.com --mqtt-ca ca.pem \
      --mqtt-username ops --mqtt-password-file ops.pass --gateway-id gw-1
  edgeota watch --mqtt tcp://localhost:1883 --json | jq 'select(.kind == "event")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runWatch(cmd, &f) },
	}
	fl := cmd.Flags()
	f.conn.register(fl, "broker URL: "+mqttURLForms)
	fl.StringVar(&f.gateway, "gateway-id", "", "watch only this gateway (default: every gateway)")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object per line (NDJSON)")
	return cmd
}

// runWatch connects, subscribes and prints until the command's context ends.
func runWatch(cmd *cobra.Command, f *watchFlags) error {
	ctx := cmd.Context()
	conn, err := f.conn.conn()
	if err != nil {
		return err
	}
	if f.gateway != "" && !protocol.ValidID(f.gateway) {
		return usagef("--gateway-id %q does not match [A-Za-z0-9._-]{1,64}", f.gateway)
	}
	opts := conn.clientOptions(watchClientID())
	topics := protocol.Topics{Prefix: conn.Prefix}
	gw := f.gateway
	if gw == "" {
		gw = "+" // every gateway
	}
	filters := map[string]byte{
		topics.Gateway(gw, protocol.TopicHealth): 1,
		topics.Gateway(gw, protocol.TopicStatus): 1,
		topics.Rollout(gw, "+"):                  1,
		topics.Gateway(gw, protocol.TopicState):  1,
	}
	log := loggerFrom(cmd)
	p := &watchPrinter{out: cmd.OutOrStdout(), log: log, topics: topics, asJSON: f.asJSON}

	// Handlers run in order on paho's router goroutine and must not block
	// it for long: they hand messages to this goroutine, which prints.
	msgs := make(chan mqtt.Message, 256)
	onMessage := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}
	// A clean session loses its subscriptions: subscribe on every
	// connection. OnConnect runs on its own goroutine, so it may wait. A
	// refused subscription, even after a reconnection, ends the command:
	// watching nothing would look like a quiet fleet.
	subscribed := make(chan error, 1)
	var connections atomic.Int64
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		err := waitMQTTToken(c.SubscribeMultiple(filters, onMessage))
		if err != nil {
			err = fmt.Errorf("subscribe to %s: %w", topics.GatewayAll(gw), err)
		} else if connections.Add(1) > 1 {
			log.Info("reconnected and subscribed again", "broker", conn.Broker)
		}
		select {
		case subscribed <- err:
		default: // an earlier result is still unread
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		log.Warn("connection to the broker lost; reconnecting", "broker", conn.Broker, "error", err)
	})
	opts.SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
		log.Debug("reconnecting", "broker", conn.Broker)
	})
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	defer client.Disconnect(250)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("connect to %s: %w", conn.Broker, err)
		}
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-subscribed:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return nil
	}
	log.Info("watching", "broker", conn.Broker, "topics", slices.Sorted(maps.Keys(filters)))
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-subscribed:
			if err != nil {
				return err
			}
		case m := <-msgs:
			if err := p.print(m.Topic(), m.Payload(), m.Retained()); err != nil {
				return err
			}
		}
	}
}

// waitMQTT waits for a paho token and returns its error, including a
// subscription the broker refused (SUBACK 0x80).
func waitMQTTToken(t mqtt.Token) error {
	if !t.WaitTimeout(30 * time.Second) {
		return fmt.Errorf("no answer from the broker in 30s")
	}
	if err := t.Error(); err != nil {
		return err
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("the broker refused %s", filter)
			}
		}
	}
	return nil
}

// watchClientID is a fresh MQTT client id of 22 characters (3.1.1 brokers
// must accept 23).
func watchClientID() string {
	b := make([]byte, 4)
	rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return "edgeota-watch-" + hex.EncodeToString(b)
}

// watchPrinter renders the messages of the gateway topics, as text lines
// or NDJSON, and logs those it cannot decode.
type watchPrinter struct {
	out    io.Writer
	log    *slog.Logger
	topics protocol.Topics
	asJSON bool
}

// watchHeader starts every --json line.
type watchHeader struct {
	Gateway  string `json:"gateway"`
	Topic    string `json:"topic"`
	Kind     string `json:"kind"`
	Retained bool   `json:"retained,omitempty"`
}

// print renders one message; it returns only errors writing the output.
func (p *watchPrinter) print(topic string, payload []byte, retained bool) error {
	t, err := p.topics.Parse(topic)
	if err != nil || t.Fleet {
		p.warn(topic, fmt.Errorf("not a gateway topic"))
		return nil
	}
	gw := t.Gateway
	h := watchHeader{Gateway: gw, Topic: topic, Retained: retained}
	switch t.Kind {
	case protocol.TopicHealth:
		h.Kind = "health"
		rs, err := protocol.DecodeHealthBatch(payload)
		if err != nil {
			p.warn(topic, err)
			return nil
		}
		for i := range rs {
			if err := p.emit(struct {
				watchHeader
				healthJSON
			}{h, healthView(&rs[i])}, func() string { return healthText(gw, &rs[i]) }); err != nil {
				return err
			}
		}
	case protocol.TopicStatus:
		h.Kind = "event"
		es, err := protocol.DecodeEventBatch(payload)
		if err != nil {
			p.warn(topic, err)
			return nil
		}
		for i := range es {
			if err := p.emit(struct {
				watchHeader
				statusJSON
			}{h, statusView(&es[i])}, func() string { return statusText(gw, &es[i]) }); err != nil {
				return err
			}
		}
	case protocol.TopicRollout:
		h.Kind = "rollout"
		dep := t.ID
		var status json.RawMessage // nil: the retained status was cleared
		if len(payload) > 0 {
			if !json.Valid(payload) {
				p.warn(topic, fmt.Errorf("rollout status is not JSON"))
				return nil
			}
			status = payload
		}
		return p.emit(struct {
			watchHeader
			Deployment string          `json:"deployment"`
			Status     json.RawMessage `json:"status"`
		}{h, dep, status}, func() string { return rolloutText(gw, dep, status) + retainedText(retained) })
	case protocol.TopicState:
		h.Kind = "state"
		state := string(payload)
		if state != protocol.StateOnline && state != protocol.StateOffline {
			p.warn(topic, fmt.Errorf("state %q, want online or offline", state))
			return nil
		}
		return p.emit(struct {
			watchHeader
			State string `json:"state"`
		}{h, state}, func() string { return quoteUnprintable(gw) + " state " + state + retainedText(retained) })
	default:
		p.warn(topic, fmt.Errorf("not a gateway topic"))
	}
	return nil
}

// emit writes v as one JSON line, or the text line.
func (p *watchPrinter) emit(v any, text func() string) error {
	if p.asJSON {
		enc := json.NewEncoder(p.out)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	_, err := io.WriteString(p.out, text()+"\n")
	return err
}

func (p *watchPrinter) warn(topic string, err error) {
	p.log.Warn("payload skipped", "topic", topic, "error", err)
}

func healthText(gw string, r *protocol.HealthReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s health %s boot %d #%d seq %d slot %s: %s, %s, p50 %s p99 %s, cpu %s, ram %s, up %s",
		quoteUnprintable(gw), r.NodeID, r.BootCount, r.Number, r.RunningSeq, r.ActiveSlot,
		countText(r.Inferences, "inference"), countText(r.Errors, "error"),
		millisText(r.LatencyP50Micros), millisText(r.LatencyP99Micros), percentText(r.CPUPermille), bytesText(r.RAMBytes),
		time.Duration(min(r.UptimeSeconds, uint64(1<<63-1)/uint64(time.Second)))*time.Second)
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, ", %s %d", quoteUnprintable(k), r.Metrics[k])
	}
	return b.String()
}

func statusText(gw string, e *protocol.StatusEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s event %s boot %d #%d: %s seq %d", quoteUnprintable(gw), e.NodeID, e.BootCount, e.Number, e.State, e.Seq)
	if e.BytesReceived > 0 {
		fmt.Fprintf(&b, ", %d bytes received", e.BytesReceived)
	}
	switch {
	case e.Code != protocol.ReasonNone && e.Reason != "":
		fmt.Fprintf(&b, " (%s: %s)", e.Code, quoteUnprintable(e.Reason))
	case e.Code != protocol.ReasonNone:
		fmt.Fprintf(&b, " (%s)", e.Code)
	case e.Reason != "":
		fmt.Fprintf(&b, " (%s)", quoteUnprintable(e.Reason))
	}
	if e.Actor != "" {
		fmt.Fprintf(&b, " by %s", quoteUnprintable(e.Actor))
	}
	return b.String()
}

func rolloutText(gw, dep string, status json.RawMessage) string {
	if status == nil {
		return quoteUnprintable(gw) + " rollout " + quoteUnprintable(dep) + " cleared"
	}
	var b bytes.Buffer
	b.WriteString(quoteUnprintable(gw) + " rollout " + quoteUnprintable(dep) + ": ")
	if err := json.Compact(&b, status); err != nil {
		b.Write(status) // validated before; not reached
	}
	return b.String()
}

func retainedText(retained bool) string {
	if retained {
		return " (retained)"
	}
	return ""
}

// printable quotes text from the network that would break a line or
// drive the terminal.
func quoteUnprintable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func countText(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

// millis renders microseconds as milliseconds with one decimal: "12.0ms".
func millisText(us uint64) string { return tenthsText(us, 100) + "ms" }

// percent renders per-mille as a percentage with one decimal: "35.0%".
func percentText(permille uint64) string { return tenthsText(permille, 1) + "%" }

// decimalOne renders v/(10*unit) with one decimal, rounding half up.
func tenthsText(v, unit uint64) string {
	tenths := (v + unit/2) / unit
	return fmt.Sprintf("%d.%d", tenths/10, tenths%10)
}

// sizeText renders bytes: "900 B", "176 KiB", "1.5 MiB".
func bytesText(n uint64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 10<<20:
		return fmt.Sprintf("%d KiB", (n+512)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
