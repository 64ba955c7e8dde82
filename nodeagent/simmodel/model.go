package simmodel

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"edgeota/nodeagent"
)

// ErrCrashOnBoot is wrapped by the error of [Runtime.Load] for an image
// whose header says crash_on_boot=1: the model never starts, as a real
// runtime that crashes while loading it.
var ErrCrashOnBoot = errors.New("simmodel: model crashed on boot")

// ErrInference is the error of a failed [Model.Infer]; models fail at the
// rate their header's error_permille declares.
var ErrInference = errors.New("simmodel: inference failed")

// z99 is the 99th percentile of the standard normal distribution.
const z99 = 2.3263478740408408

// tailCap bounds a drawn latency at tailCap times p99, so that a wide
// distribution cannot produce absurd outliers.
const tailCap = 4

// Runtime loads simulated model images. Its zero value works.
type Runtime struct {
	// Seed makes every model's randomness deterministic: the same Seed and
	// image give the same sequence of inferences.
	Seed int64
}

// Load reads at most the first MaxHeaderLen bytes of image, of size bytes,
// and returns the model its header line describes, or a healthy model when
// it has none. It returns an error wrapping ErrHeader when the header is
// malformed or longer than MaxHeaderLen, and one wrapping ErrCrashOnBoot
// when the header says crash_on_boot=1.
func (r Runtime) Load(image io.ReaderAt, size int64) (*Model, error) {
	if size < 0 {
		return nil, fmt.Errorf("simmodel: negative image size %d", size)
	}
	buf := make([]byte, min(size, MaxHeaderLen))
	if n, err := image.ReadAt(buf, 0); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("simmodel: read image header: %w", err)
	}
	line, _, found := bytes.Cut(buf, []byte{'\n'})
	b, isSim, err := ParseHeader(line)
	if isSim && !found && size > MaxHeaderLen {
		return nil, fmt.Errorf("%w: header line longer than %d bytes", ErrHeader, MaxHeaderLen)
	}
	if err != nil {
		return nil, err
	}
	if b.CrashOnBoot {
		return nil, fmt.Errorf("%w: image header says crash_on_boot=1", ErrCrashOnBoot)
	}
	h := fnv.New64a()
	h.Write(line)
	return newModel(b, uint64(r.Seed), h.Sum64()), nil
}

// ForAgent returns r as the node agent's runtime, for nodeagent.Config's
// Models.
func (r Runtime) ForAgent() nodeagent.Runtime { return agentRuntime{r} }

// agentRuntime is a Runtime as a nodeagent.Runtime.
type agentRuntime struct{ r Runtime }

// Load loads image as [Runtime.Load] does.
func (a agentRuntime) Load(image io.ReaderAt, size int64) (nodeagent.Model, error) {
	m, err := a.r.Load(image, size)
	if err != nil {
		return nil, err // not a nil *Model in a non-nil interface
	}
	return m, nil
}

// Model is a loaded simulated model. Its methods are safe for concurrent
// use.
type Model struct {
	b         Behaviour
	mu, sigma float64 // of the log-normal latency, in microseconds
	maxUS     float64 // the largest latency drawn, in microseconds

	lock sync.Mutex
	rng  *rand.Rand
}

func newModel(b Behaviour, seed1, seed2 uint64) *Model {
	return &Model{
		b:     b,
		mu:    math.Log(float64(b.P50Micros)),
		sigma: math.Log(float64(b.P99Micros)/float64(b.P50Micros)) / z99,
		maxUS: tailCap * float64(b.P99Micros),
		rng:   rand.New(rand.NewPCG(seed1, seed2)),
	}
}

// Infer runs one simulated inference and returns how long it took; it does
// not sleep. The latency is drawn from a log-normal distribution whose
// median is the header's p50_us and whose 99th percentile is its p99_us,
// capped at 4 times p99_us. The error is ErrInference, with probability
// error_permille/1000; a failed inference still reports its latency.
func (m *Model) Infer() (latency time.Duration, err error) {
	m.lock.Lock()
	z := m.rng.NormFloat64()
	fail := m.rng.Uint64N(1000) < m.b.ErrorPermille
	m.lock.Unlock()

	us := min(math.Exp(m.mu+m.sigma*z), m.maxUS)
	latency = time.Duration(us * float64(time.Microsecond))
	if fail {
		return latency, ErrInference
	}
	return latency, nil
}

// RAMBytes returns the RAM the model uses, the header's ram_bytes.
func (m *Model) RAMBytes() uint64 { return m.b.RAMBytes }

// CPUPermille returns the CPU the model uses, per-mille of one core: the
// header's cpu_permille.
func (m *Model) CPUPermille() uint64 { return m.b.CPUPermille }

// Behaviour returns the behaviour the model's header declared.
func (m *Model) Behaviour() Behaviour { return m.b }

// Metrics returns the model-quality metrics the model reports with every
// health report: the header's metric.NAME=VALUE, or nil when it declares
// none. The map is the caller's.
func (m *Model) Metrics() map[string]int64 {
	if m.b.Metric.Name == "" {
		return nil
	}
	return map[string]int64{m.b.Metric.Name: m.b.Metric.Value}
}
