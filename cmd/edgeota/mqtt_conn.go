package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/spf13/pflag"

	"edgeota/protocol"
)

// mqttConnFlags are the flags of an MQTT connection, the same for the
// gateway's uplink and for watch: the broker URL, the topic prefix, TLS
// and credentials.
type mqttConnFlags struct {
	url, prefix                  string
	caFile, certFile, keyFile    string
	username, password, passFile string
}

// register adds the connection flags to fl; urlUsage describes --mqtt.
func (f *mqttConnFlags) register(fl *pflag.FlagSet, urlUsage string) {
	fl.StringVar(&f.url, "mqtt", "", urlUsage)
	fl.StringVar(&f.prefix, "mqtt-prefix", protocol.DefaultTopicPrefix, "MQTT topic prefix")
	fl.StringVar(&f.caFile, "mqtt-ca", "", "PEM CA certificates to verify a TLS broker with (default: system roots)")
	fl.StringVar(&f.certFile, "mqtt-cert", "", "PEM client certificate for a TLS broker (with --mqtt-key)")
	fl.StringVar(&f.keyFile, "mqtt-key", "", "PEM private key of --mqtt-cert")
	fl.StringVar(&f.username, "mqtt-username", "", "MQTT user name")
	fl.StringVar(&f.password, "mqtt-password", "", "MQTT password (visible in the process list: prefer --mqtt-password-file)")
	fl.StringVar(&f.passFile, "mqtt-password-file", "", "file holding the MQTT password (one line)")
}

// mqttConn is a checked MQTT connection: what paho is given.
type mqttConn struct {
	// Broker is the broker's URL with its port: tcp://HOST:1883,
	// ssl://HOST:8883, ws://HOST:80/PATH, ...
	Broker string
	// TLS is the TLS configuration of a TLS broker, nil for a plain one.
	TLS *tls.Config
	// Username and Password authenticate to the broker.
	Username, Password string
	// Prefix is the topic prefix, without a trailing slash.
	Prefix string
}

// The broker URL schemes paho v1.5 dials, and their default ports. ws and
// wss take the path of the broker's WebSocket endpoint.
var mqttSchemes = map[string]struct {
	port      string
	tls, path bool
}{
	"tcp":      {"1883", false, false},
	"mqtt":     {"1883", false, false},
	"ssl":      {"8883", true, false},
	"tls":      {"8883", true, false},
	"mqtts":    {"8883", true, false},
	"mqtt+ssl": {"8883", true, false},
	"tcps":     {"8883", true, false},
	"ws":       {"80", false, true},
	"wss":      {"443", true, true},
}

// mqttURLForms is what --mqtt takes, for usage messages.
const mqttURLForms = "tcp://HOST[:1883], mqtts://HOST[:8883] (TLS; ssl:// and tls:// are the same) or ws[s]://HOST[:PORT]/PATH"

// parseBrokerURL checks a broker URL and returns it with its default port
// filled in, whether it is TLS, and its host name.
func parseBrokerURL(s string) (broker string, secure bool, host string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || u.Opaque != "" {
		return "", false, "", usagef("--mqtt %q: want %s", s, mqttURLForms)
	}
	sc, ok := mqttSchemes[u.Scheme]
	if !ok {
		return "", false, "", usagef("--mqtt %q: scheme %q, want %s", s, u.Scheme, mqttURLForms)
	}
	if u.User != nil {
		return "", false, "", usagef("--mqtt: give credentials with --mqtt-username and --mqtt-password-file, not in the URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || (!sc.path && u.Path != "" && u.Path != "/") {
		return "", false, "", usagef("--mqtt %q: a broker URL has no path or query (only ws:// and wss:// have a path)", s)
	}
	port := sc.port
	if u.Port() != "" {
		port = u.Port()
	}
	broker = u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port)
	if sc.path {
		broker += u.EscapedPath()
	}
	return broker, sc.tls, u.Hostname(), nil
}

// conn checks the flags and reads the files they name. An empty --mqtt is
// an error: the caller handles what it allows instead (the gateway: no
// uplink, or its embedded broker).
func (f *mqttConnFlags) conn() (mqttConn, error) {
	if f.url == "" {
		return mqttConn{}, usagef("--mqtt URL is required (%s)", mqttURLForms)
	}
	broker, secure, host, err := parseBrokerURL(f.url)
	if err != nil {
		return mqttConn{}, err
	}
	c := mqttConn{Broker: broker}
	if c.Prefix, err = f.topicPrefix(); err != nil {
		return mqttConn{}, err
	}
	if c.Username, c.Password, err = f.credentials(); err != nil {
		return mqttConn{}, err
	}
	if !secure {
		if f.caFile != "" || f.certFile != "" || f.keyFile != "" {
			return mqttConn{}, usagef("--mqtt-ca, --mqtt-cert and --mqtt-key need a TLS broker URL (mqtts://, ssl://), not %s",
				strings.SplitN(broker, ":", 2)[0]+"://")
		}
		return c, nil
	}
	if c.TLS, err = f.tlsConfig(host); err != nil {
		return mqttConn{}, err
	}
	return c, nil
}

// topicPrefix checks --mqtt-prefix: topic levels without wildcards.
func (f *mqttConnFlags) topicPrefix() (string, error) {
	p := strings.TrimSuffix(f.prefix, "/")
	if p == "" || strings.ContainsAny(p, "+#\x00") || strings.HasPrefix(p, "/") {
		return "", usagef("--mqtt-prefix %q: want topic levels without wildcards, such as %s", f.prefix, protocol.DefaultTopicPrefix)
	}
	return p, nil
}

// credentials checks the user name and reads the password.
func (f *mqttConnFlags) credentials() (user, password string, err error) {
	if f.password != "" && f.passFile != "" {
		return "", "", usagef("--mqtt-password and --mqtt-password-file exclude each other")
	}
	password = f.password
	if f.passFile != "" {
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return "", "", fmt.Errorf("--mqtt-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
		if password == "" {
			return "", "", fmt.Errorf("--mqtt-password-file %s is empty", f.passFile)
		}
	}
	if password != "" && f.username == "" {
		return "", "", usagef("a password needs --mqtt-username (MQTT 3.1.1)")
	}
	return f.username, password, nil
}

// tlsConfig builds the TLS configuration of a broker named host.
func (f *mqttConnFlags) tlsConfig(host string) (*tls.Config, error) {
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, usagef("--mqtt-cert and --mqtt-key go together")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--mqtt-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--mqtt-ca %s: no PEM certificate in it", f.caFile)
		}
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--mqtt-cert/--mqtt-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// clientOptions returns paho options for c with clientID: a clean session
// that reconnects by itself.
func (c mqttConn) clientOptions(clientID string) *mqtt.ClientOptions {
	opts := mqtt.NewClientOptions().
		AddBroker(c.Broker).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetUsername(c.Username).
		SetPassword(c.Password)
	if c.TLS != nil {
		opts.SetTLSConfig(c.TLS)
	}
	return opts
}
