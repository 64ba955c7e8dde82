package gwlink

import (
	"fmt"
	"log/slog"
	"math/bits"
	"time"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// Defaults of the options.
const (
	DefaultBlockSize      = 1024
	DefaultRequestTimeout = 10 * time.Second
	DefaultPollInterval   = 60 * time.Second
	DefaultAckTimeout     = 2 * time.Second // RFC 7252 ACK_TIMEOUT
	DefaultMaxRetransmit  = 4               // RFC 7252 MAX_RETRANSMIT
	DefaultKeepAlive      = 10 * time.Second
	DefaultBackoffMax     = 30 * time.Second
	DefaultMaxElapsed     = 60 * time.Second
	DefaultMaxWait        = 60 * time.Second
)

// config is what the options set; its zero value is replaced by defaults.
type config struct {
	log            *slog.Logger
	blockSize      int
	requestTimeout time.Duration
	pollInterval   time.Duration
	ackTimeout     time.Duration
	maxRetransmit  int
	keepAlive      time.Duration
	backoffInitial time.Duration
	backoffMax     time.Duration
	maxElapsed     time.Duration
	maxWait        time.Duration
	psk            []byte // set: CoAP over DTLS with this pre-shared key
	qblock         bool   // read images with Q-Block2 when the gateway has it
	qparams        QBlockParams
}

func defaultConfig() config {
	return config{
		log:            slog.New(slog.DiscardHandler),
		blockSize:      DefaultBlockSize,
		requestTimeout: DefaultRequestTimeout,
		pollInterval:   DefaultPollInterval,
		ackTimeout:     DefaultAckTimeout,
		maxRetransmit:  DefaultMaxRetransmit,
		keepAlive:      DefaultKeepAlive,
		backoffMax:     DefaultBackoffMax,
		maxElapsed:     DefaultMaxElapsed,
		maxWait:        DefaultMaxWait,
		qblock:         true,
	}
}

// validate checks the options and fills the derived ones.
func (c *config) validate() error {
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.blockSize < 16 || c.blockSize > 1024 || bits.OnesCount(uint(c.blockSize)) != 1 {
		return fmt.Errorf("gwlink: block size %d is not a power of two from 16 to 1024", c.blockSize)
	}
	if c.requestTimeout <= 0 || c.pollInterval <= 0 || c.ackTimeout <= 0 || c.maxWait <= 0 {
		return fmt.Errorf("gwlink: request timeout, poll interval, ACK timeout and max wait must be positive")
	}
	if c.maxRetransmit < 0 || c.maxRetransmit > 20 {
		return fmt.Errorf("gwlink: max retransmit %d is not from 0 to 20", c.maxRetransmit)
	}
	if c.keepAlive < 0 || c.maxElapsed < 0 {
		return fmt.Errorf("gwlink: keepalive and max elapsed must not be negative")
	}
	if err := c.qparams.fill(c.ackTimeout); err != nil {
		return err
	}
	if c.backoffInitial <= 0 {
		c.backoffInitial = c.ackTimeout / 2
	}
	if c.backoffMax < c.backoffInitial {
		c.backoffMax = c.backoffInitial
	}
	return nil
}

// szx is the block size as a Block2 SZX.
func (c *config) szx() blockwise.SZX {
	return blockwise.SZX(bits.TrailingZeros(uint(c.blockSize)) - 4)
}

// tick is the period of go-coap's retransmission timer: a quarter of the
// ACK timeout, from 5 ms to 500 ms.
func (c *config) tick() time.Duration {
	return min(max(c.ackTimeout/4, 5*time.Millisecond), 500*time.Millisecond)
}

// Option configures a Client.
type Option func(*config)

// WithPSK makes the link speak CoAP over DTLS 1.2 (RFC 6347, with
// github.com/pion/dtls) with a pre-shared key; the PSK identity is the
// node id. Without it the link is plain CoAP over UDP.
func WithPSK(key []byte) Option {
	return func(c *config) { c.psk = append([]byte(nil), key...) }
}

// WithLogger sets the logger; the default discards. go-coap's own errors go
// to it at debug level, never to stdout.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithBlockSize sets the Block2 size images are read with: a power of two
// from 16 to 1024 (the default).
func WithBlockSize(n int) Option { return func(c *config) { c.blockSize = n } }

// WithRequestTimeout bounds one exchange, CoAP retransmissions included
// (default 10 s); an exchange that times out is retried as a new one.
func WithRequestTimeout(d time.Duration) Option { return func(c *config) { c.requestTimeout = d } }

// WithPollInterval sets how often Watch polls the manifest besides
// observing it (default 60 s).
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// WithTransmission sets the CoAP ACK_TIMEOUT (default 2 s) and
// MAX_RETRANSMIT (default 4) of confirmable requests (RFC 7252 section
// 4.8). A short ACK timeout suits a link with a short round trip: each lost
// datagram costs about one ACK timeout.
func WithTransmission(ackTimeout time.Duration, maxRetransmit int) Option {
	return func(c *config) { c.ackTimeout, c.maxRetransmit = ackTimeout, maxRetransmit }
}

// WithKeepAlive sets how long Watch lets the link stay silent before it
// pings the gateway (default 10 s, under go-coap's 16 s server inactivity
// timeout, which would drop the observation); 0 turns pings off.
func WithKeepAlive(d time.Duration) Option { return func(c *config) { c.keepAlive = d } }

// WithBackoff sets the first and the longest wait between retries of a
// failed exchange (defaults: half the ACK timeout, and 30 s).
func WithBackoff(initial, maxInterval time.Duration) Option {
	return func(c *config) { c.backoffInitial, c.backoffMax = initial, maxInterval }
}

// WithMaxElapsed bounds how long Hello, Health, Status and Manifest go on
// retrying transport failures (default 60 s; 0: until the context ends).
// Waiting out 5.03 answers does not count.
func WithMaxElapsed(d time.Duration) Option { return func(c *config) { c.maxElapsed = d } }

// WithMaxWait caps the wait a 5.03 answer's Max-Age asks for (default 60 s).
func WithMaxWait(d time.Duration) Option { return func(c *config) { c.maxWait = d } }

// WithQBlock turns RFC 9177 Q-Block2 image downloads on (the default) or
// off. On, the node asks for an image in bursts and falls back to
// lock-step Block2 when the gateway answers 4.02 Bad Option or with Block2
// (remembered for the connection); off, it always reads lock-step.
func WithQBlock(on bool) Option { return func(c *config) { c.qblock = on } }

// WithQBlockParams sets the Q-Block2 parameters (RFC 9177 section 7.2);
// zero fields keep their defaults.
func WithQBlockParams(p QBlockParams) Option { return func(c *config) { c.qparams = p } }
