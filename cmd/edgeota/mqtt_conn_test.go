package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/gateway"
	"edgeota/protocol"
)

func TestParseBrokerURL(t *testing.T) {
	tests := []struct {
		url     string
		broker  string
		secure  bool
		wantErr string
	}{
		{"tcp://h", "tcp://h:1883", false, ""},
		{"mqtt://h:1884", "mqtt://h:1884", false, ""},
		{"ssl://h", "ssl://h:8883", true, ""},
		{"tls://h", "tls://h:8883", true, ""},
		{"mqtts://h", "mqtts://h:8883", true, ""},
		{"mqtts://broker.example.com:9883", "mqtts://broker.example.com:9883", true, ""},
		{"mqtt+ssl://h", "mqtt+ssl://h:8883", true, ""},
		{"tcps://h", "tcps://h:8883", true, ""},
		{"ws://h/mqtt", "ws://h:80/mqtt", false, ""},
		{"wss://h:8443/mqtt", "wss://h:8443/mqtt", true, ""},
		{"tcp://[::1]", "tcp://[::1]:1883", false, ""},
		{"tcp://h/", "tcp://h:1883", false, ""},
		{"http://h:1883", "", false, `scheme "http"`},
		{"tcp://", "", false, "want tcp://HOST"},
		{"h:1883", "", false, "want tcp://HOST"},
		{"tcp://u:p@h", "", false, "not in the URL"},
		{"tcp://h/x", "", false, "no path"},
		{"mqtts://h?x=1", "", false, "no path or query"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			broker, secure, _, err := parseBrokerURL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || broker != tt.broker || secure != tt.secure {
				t.Fatalf("= %q, secure %v, %v; want %q, secure %v", broker, secure, err, tt.broker, tt.secure)
			}
		})
	}
}

// TestMQTTConn checks the connection flags as both commands read them:
// watch through conn, the gateway through mqttFlags.apply, which must
// agree on every external broker.
func TestMQTTConn(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		flags    mqttConnFlags
		broker   string
		tls      bool
		user     string
		password string
		prefix   string
		wantErr  string
	}{
		{"plain", mqttConnFlags{url: "tcp://h"}, "tcp://h:1883", false, "", "", protocol.DefaultTopicPrefix, ""},
		{"mqtts", mqttConnFlags{url: "mqtts://h"}, "mqtts://h:8883", true, "", "", protocol.DefaultTopicPrefix, ""},
		{"password file", mqttConnFlags{url: "mqtts://h", username: "ops", passFile: pass}, "mqtts://h:8883", true, "ops", "s3cret", protocol.DefaultTopicPrefix, ""},
		{"password", mqttConnFlags{url: "tcp://h", username: "ops", password: "pw"}, "tcp://h:1883", false, "ops", "pw", protocol.DefaultTopicPrefix, ""},
		{"prefix", mqttConnFlags{url: "tcp://h", prefix: "site/a/"}, "tcp://h:1883", false, "", "", "site/a", ""},
		{"no url", mqttConnFlags{}, "", false, "", "", "", "--mqtt URL is required"},
		{"wildcard prefix", mqttConnFlags{url: "tcp://h", prefix: "a/#"}, "", false, "", "", "", "--mqtt-prefix"},
		{"TLS files on tcp", mqttConnFlags{url: "tcp://h", caFile: ca}, "", false, "", "", "", "need a TLS broker URL"},
		{"cert without key", mqttConnFlags{url: "ssl://h", certFile: "c.pem"}, "", false, "", "", "", "go together"},
		{"bad CA", mqttConnFlags{url: "mqtts://h", caFile: ca}, "", false, "", "", "", "no PEM certificate"},
		{"two passwords", mqttConnFlags{url: "tcp://h", username: "u", password: "p", passFile: pass}, "", false, "", "", "", "exclude each other"},
		{"password without user", mqttConnFlags{url: "tcp://h", passFile: pass}, "", false, "", "", "", "needs --mqtt-username"},
		{"empty password file", mqttConnFlags{url: "tcp://h", username: "u", passFile: empty}, "", false, "", "", "", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.flags.prefix == "" {
				tt.flags.prefix = protocol.DefaultTopicPrefix
			}
			c, err := tt.flags.conn()
			gw := mqttFlags{conn: tt.flags, batchInterval: "100ms"}
			var gc gateway.Config
			gwErr := gw.apply(&gc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				if tt.flags.url != "" && (gwErr == nil || gwErr.Error() != err.Error()) {
					t.Errorf("the gateway's error %v differs from watch's %v", gwErr, err)
				}
				return
			}
			if err != nil || gwErr != nil {
				t.Fatalf("watch: %v, gateway: %v", err, gwErr)
			}
			if c.Broker != tt.broker || (c.TLS != nil) != tt.tls || c.Username != tt.user || c.Password != tt.password || c.Prefix != tt.prefix {
				t.Errorf("= %+v; want broker %q, TLS %v, user %q, password %q, prefix %q", c, tt.broker, tt.tls, tt.user, tt.password, tt.prefix)
			}
			if tt.tls && c.TLS.ServerName != "h" {
				t.Errorf("TLS server name %q, want h", c.TLS.ServerName)
			}
			if gc.MQTT != c.Broker || (gc.MQTTTLS != nil) != tt.tls || gc.MQTTUsername != c.Username || gc.MQTTPassword != c.Password || gc.MQTTPrefix != c.Prefix {
				t.Errorf("the gateway's config (%q, TLS %v, %q, %q, %q) differs from watch's %+v",
					gc.MQTT, gc.MQTTTLS != nil, gc.MQTTUsername, gc.MQTTPassword, gc.MQTTPrefix, c)
			}
		})
	}
}

func TestGatewayEmbeddedBroker(t *testing.T) {
	tests := []struct {
		name    string
		flags   mqttConnFlags
		mqtt    string
		wantErr string
	}{
		{"no uplink", mqttConnFlags{}, "", ""},
		{"embedded", mqttConnFlags{url: "embedded"}, "embedded", ""},
		{"embedded at an address", mqttConnFlags{url: "embedded:127.0.0.1:1999"}, "embedded:127.0.0.1:1999", ""},
		{"embedded with TLS", mqttConnFlags{url: "embedded", caFile: "ca.pem"}, "", "need an external broker"},
		{"embedded with a user", mqttConnFlags{url: "embedded", username: "u"}, "", "need an external broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.flags.prefix = protocol.DefaultTopicPrefix
			gw := mqttFlags{conn: tt.flags, batchInterval: "100ms"}
			var gc gateway.Config
			err := gw.apply(&gc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || gc.MQTT != tt.mqtt || gc.MQTTPrefix != protocol.DefaultTopicPrefix {
				t.Fatalf("MQTT %q prefix %q, %v; want %q", gc.MQTT, gc.MQTTPrefix, err, tt.mqtt)
			}
		})
	}
}
