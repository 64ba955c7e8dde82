package simmodel

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Magic is the first word of a simulated model's header line.
const Magic = "edgeota-sim-model"

// MaxHeaderLen is the most bytes of an image [Runtime.Load] reads to find
// the header line, newline included.
const MaxHeaderLen = 256

// MaxLatencyMicros is the largest p50_us or p99_us a header may declare:
// 100 seconds.
const MaxLatencyMicros = 100_000_000

// ErrHeader is wrapped by every error about a malformed header line: one
// that starts with [Magic] but has an unknown or repeated key, a bad number
// or an out-of-range value.
var ErrHeader = errors.New("simmodel: bad header")

// Behaviour is how a simulated model behaves, as its header line declares.
type Behaviour struct {
	// ErrorPermille is key error_permille: inferences per thousand that
	// fail with ErrInference, at most 1000.
	ErrorPermille uint64
	// P50Micros is key p50_us: the median inference latency in
	// microseconds, at least 1.
	P50Micros uint64
	// P99Micros is key p99_us: the 99th percentile inference latency in
	// microseconds, at least P50Micros and at most MaxLatencyMicros.
	P99Micros uint64
	// RAMBytes is key ram_bytes: the RAM the loaded model uses.
	RAMBytes uint64
	// CPUPermille is key cpu_permille: the CPU the model uses, per-mille of
	// one core.
	CPUPermille uint64
	// CrashOnBoot is key crash_on_boot (0 or 1): the model fails to load.
	CrashOnBoot bool
	// Metric is key metric.NAME=VALUE: a model-quality metric the model
	// reports with every health report (docs/protocol.md section 4, key
	// 64), which a deployment's metric gate can bound. The zero Metric
	// reports none.
	Metric Metric
}

// Metric is one model-quality metric a simulated model reports.
type Metric struct {
	// Name is lower-case letters, digits and '_', 1 to [MaxMetricNameLen]
	// bytes, such as "low_confidence_permille".
	Name string
	// Value is what every report says, a signed decimal in the header.
	Value int64
}

// MaxMetricNameLen is the longest metric name a header may declare: the
// longest a deployment's metric gate can name.
const MaxMetricNameLen = 32

// metricPrefix starts the key of a header's metric.
const metricPrefix = "metric."

// Healthy returns the behaviour of an image without a header, and the
// default of every key a header leaves out: no errors, p50 8 ms, p99 20 ms,
// 128 KiB of RAM, 30% of one core, loads fine.
func Healthy() Behaviour {
	return Behaviour{
		ErrorPermille: 0,
		P50Micros:     8000,
		P99Micros:     20000,
		RAMBytes:      131072,
		CPUPermille:   300,
		CrashOnBoot:   false,
	}
}

// Header returns b as a header line, without a newline, with every key
// present. ParseHeader(b.Header()) returns b when b is valid.
func (b Behaviour) Header() string {
	crash := 0
	if b.CrashOnBoot {
		crash = 1
	}
	h := fmt.Sprintf("%s error_permille=%d p50_us=%d p99_us=%d ram_bytes=%d cpu_permille=%d crash_on_boot=%d",
		Magic, b.ErrorPermille, b.P50Micros, b.P99Micros, b.RAMBytes, b.CPUPermille, crash)
	if b.Metric.Name != "" {
		h += fmt.Sprintf(" %s%s=%d", metricPrefix, b.Metric.Name, b.Metric.Value)
	}
	return h
}

// Validate reports whether b is in range: ErrorPermille at most 1000,
// P50Micros at least 1, P50Micros at most P99Micros, P99Micros at most
// MaxLatencyMicros. Its errors wrap ErrHeader.
func (b Behaviour) Validate() error {
	switch {
	case b.ErrorPermille > 1000:
		return fmt.Errorf("%w: error_permille=%d is over 1000", ErrHeader, b.ErrorPermille)
	case b.P50Micros == 0:
		return fmt.Errorf("%w: p50_us=0, want at least 1", ErrHeader)
	case b.P99Micros > MaxLatencyMicros:
		return fmt.Errorf("%w: p99_us=%d is over %d", ErrHeader, b.P99Micros, MaxLatencyMicros)
	case b.P50Micros > b.P99Micros:
		return fmt.Errorf("%w: p50_us=%d is over p99_us=%d", ErrHeader, b.P50Micros, b.P99Micros)
	case b.Metric != Metric{} && !validMetricName(b.Metric.Name):
		return fmt.Errorf("%w: metric name %q: want 1 to %d of a-z, 0-9 and _", ErrHeader, b.Metric.Name, MaxMetricNameLen)
	}
	return nil
}

func validMetricName(s string) bool {
	if len(s) == 0 || len(s) > MaxMetricNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// ParseHeader parses an image's first line; anything from the first newline
// on is ignored, as is a carriage return before it. It reports whether the
// line is a simulated model's header, that is whether its first word is
// [Magic]. When it is not, ParseHeader returns [Healthy], false and nil;
// when it is, the error is non-nil if the line is malformed (see the package
// documentation) and wraps [ErrHeader].
func ParseHeader(firstLine []byte) (Behaviour, bool, error) {
	if i := bytes.IndexByte(firstLine, '\n'); i >= 0 {
		firstLine = firstLine[:i]
	}
	fields := strings.Fields(string(firstLine))
	if len(fields) == 0 || fields[0] != Magic {
		return Healthy(), false, nil
	}
	b := Healthy()
	seen := make(map[string]bool, len(fields)-1)
	for _, f := range fields[1:] {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return Behaviour{}, true, fmt.Errorf("%w: %q is not key=value", ErrHeader, f)
		}
		if name, ok := strings.CutPrefix(key, metricPrefix); ok {
			if b.Metric.Name != "" {
				return Behaviour{}, true, fmt.Errorf("%w: %s: a model declares at most one metric", ErrHeader, key)
			}
			v, err := strconv.ParseInt(val, 10, 64)
			if err != nil || strings.HasPrefix(val, "+") {
				return Behaviour{}, true, fmt.Errorf("%w: %s=%q is not a decimal number", ErrHeader, key, val)
			}
			b.Metric = Metric{Name: name, Value: v}
			if !validMetricName(name) {
				return Behaviour{}, true, fmt.Errorf("%w: metric name %q: want 1 to %d of a-z, 0-9 and _", ErrHeader, name, MaxMetricNameLen)
			}
			continue
		}
		var dst *uint64
		var crash uint64
		switch key {
		case "error_permille":
			dst = &b.ErrorPermille
		case "p50_us":
			dst = &b.P50Micros
		case "p99_us":
			dst = &b.P99Micros
		case "ram_bytes":
			dst = &b.RAMBytes
		case "cpu_permille":
			dst = &b.CPUPermille
		case "crash_on_boot":
			dst = &crash
		default:
			return Behaviour{}, true, fmt.Errorf("%w: unknown key %q", ErrHeader, key)
		}
		if seen[key] {
			return Behaviour{}, true, fmt.Errorf("%w: key %q repeated", ErrHeader, key)
		}
		seen[key] = true
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return Behaviour{}, true, fmt.Errorf("%w: %s=%q is not a decimal number", ErrHeader, key, val)
		}
		*dst = n
		if key == "crash_on_boot" {
			if n > 1 {
				return Behaviour{}, true, fmt.Errorf("%w: crash_on_boot=%d, want 0 or 1", ErrHeader, n)
			}
			b.CrashOnBoot = n == 1
		}
	}
	if err := b.Validate(); err != nil {
		return Behaviour{}, true, err
	}
	return b, true, nil
}
