package simmodel

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	h := Healthy()
	with := func(f func(*Behaviour)) Behaviour { b := Healthy(); f(&b); return b }
	tests := []struct {
		name    string
		line    string
		want    Behaviour
		isSim   bool
		wantErr string // substring; empty means no error
	}{
		{
			name:  "all keys",
			line:  "edgeota-sim-model error_permille=5 p50_us=9000 p99_us=30000 ram_bytes=180000 cpu_permille=450 crash_on_boot=1",
			want:  Behaviour{ErrorPermille: 5, P50Micros: 9000, P99Micros: 30000, RAMBytes: 180000, CPUPermille: 450, CrashOnBoot: true},
			isSim: true,
		},
		{
			name:  "any order, newline and rest ignored",
			line:  "edgeota-sim-model crash_on_boot=0 p99_us=30000 ram_bytes=1 p50_us=9000 error_permille=5\r\nedgeota-sim-model bogus=1",
			want:  Behaviour{ErrorPermille: 5, P50Micros: 9000, P99Micros: 30000, RAMBytes: 1, CPUPermille: 300},
			isSim: true,
		},
		{name: "magic alone takes defaults", line: "edgeota-sim-model", want: h, isSim: true},
		{name: "missing keys take defaults", line: "edgeota-sim-model  ram_bytes=4096\t", want: with(func(b *Behaviour) { b.RAMBytes = 4096 }), isSim: true},
		{name: "bounds inclusive", line: "edgeota-sim-model error_permille=1000 p50_us=1 p99_us=1", want: with(func(b *Behaviour) { b.ErrorPermille, b.P50Micros, b.P99Micros = 1000, 1, 1 }), isSim: true},
		{name: "p99 at max", line: "edgeota-sim-model p99_us=100000000", want: with(func(b *Behaviour) { b.P99Micros = MaxLatencyMicros }), isSim: true},
		{name: "p50 equal p99", line: "edgeota-sim-model p50_us=20000", want: with(func(b *Behaviour) { b.P50Micros = 20000 }), isSim: true},
		{name: "metric", line: "edgeota-sim-model metric.low_confidence_permille=80 p50_us=9000",
			want: with(func(b *Behaviour) { b.P50Micros, b.Metric = 9000, Metric{"low_confidence_permille", 80} }), isSim: true},
		{name: "negative metric", line: "edgeota-sim-model metric.drift=-3", want: with(func(b *Behaviour) { b.Metric = Metric{"drift", -3} }), isSim: true},

		{name: "not a sim model", line: "\x7fELF\x02\x01\x01", want: h},
		{name: "empty", line: "", want: h},
		{name: "magic not first", line: "model edgeota-sim-model error_permille=1000", want: h},
		{name: "magic prefix of a word", line: "edgeota-sim-models error_permille=1000", want: h},
		{name: "magic on second line", line: "hello\nedgeota-sim-model error_permille=1000", want: h},

		{name: "unknown key", line: "edgeota-sim-model latency_jitter=3", isSim: true, wantErr: `unknown key "latency_jitter"`},
		{name: "repeated key", line: "edgeota-sim-model p50_us=1 p50_us=2", isSim: true, wantErr: `key "p50_us" repeated`},
		{name: "not key=value", line: "edgeota-sim-model p50_us", isSim: true, wantErr: `"p50_us" is not key=value`},
		{name: "empty value", line: "edgeota-sim-model p50_us=", isSim: true, wantErr: `p50_us="" is not a decimal number`},
		{name: "negative", line: "edgeota-sim-model ram_bytes=-1", isSim: true, wantErr: `ram_bytes="-1" is not a decimal number`},
		{name: "plus sign", line: "edgeota-sim-model ram_bytes=+1", isSim: true, wantErr: `ram_bytes="+1" is not a decimal number`},
		{name: "hex", line: "edgeota-sim-model ram_bytes=0x10", isSim: true, wantErr: `ram_bytes="0x10" is not a decimal number`},
		{name: "overflow", line: "edgeota-sim-model ram_bytes=18446744073709551616", isSim: true, wantErr: `ram_bytes="18446744073709551616"`},
		{name: "crash_on_boot 2", line: "edgeota-sim-model crash_on_boot=2", isSim: true, wantErr: "crash_on_boot=2, want 0 or 1"},
		{name: "error_permille over 1000", line: "edgeota-sim-model error_permille=1001", isSim: true, wantErr: "error_permille=1001 is over 1000"},
		{name: "p50 over p99", line: "edgeota-sim-model p50_us=20001 p99_us=20000", isSim: true, wantErr: "p50_us=20001 is over p99_us=20000"},
		{name: "p50 over default p99", line: "edgeota-sim-model p50_us=30000", isSim: true, wantErr: "p50_us=30000 is over p99_us=20000"},
		{name: "p50 zero", line: "edgeota-sim-model p50_us=0 p99_us=0", isSim: true, wantErr: "p50_us=0"},
		{name: "p99 over max", line: "edgeota-sim-model p99_us=100000001", isSim: true, wantErr: "p99_us=100000001 is over 100000000"},
		{name: "two metrics", line: "edgeota-sim-model metric.a=1 metric.b=2", isSim: true, wantErr: "metric.b: a model declares at most one metric"},
		{name: "metric without name", line: "edgeota-sim-model metric.=1", isSim: true, wantErr: `metric name ""`},
		{name: "metric name upper-case", line: "edgeota-sim-model metric.Drift=1", isSim: true, wantErr: `metric name "Drift"`},
		{name: "metric not a number", line: "edgeota-sim-model metric.drift=1.5", isSim: true, wantErr: `metric.drift="1.5" is not a decimal number`},
		{name: "metric plus sign", line: "edgeota-sim-model metric.drift=+1", isSim: true, wantErr: `metric.drift="+1" is not a decimal number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, isSim, err := ParseHeader([]byte(tt.line))
			if isSim != tt.isSim {
				t.Errorf("isSim = %v, want %v", isSim, tt.isSim)
			}
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("err = nil, want one containing %q", tt.wantErr)
				}
				if !errors.Is(err, ErrHeader) {
					t.Errorf("err %v does not wrap ErrHeader", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "simmodel: ") {
					t.Errorf("err = %q, want prefix \"simmodel: \" and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, b := range []Behaviour{
		Healthy(),
		{ErrorPermille: 1000, P50Micros: 1, P99Micros: MaxLatencyMicros, RAMBytes: 1<<64 - 1, CPUPermille: 4000, CrashOnBoot: true},
		{P50Micros: 1, P99Micros: 1, Metric: Metric{Name: strings.Repeat("m", MaxMetricNameLen), Value: -1 << 63}},
	} {
		got, isSim, err := ParseHeader([]byte(b.Header()))
		if err != nil || !isSim || got != b {
			t.Errorf("ParseHeader(%q) = %+v, %v, %v; want %+v, true, nil", b.Header(), got, isSim, err, b)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("edgeota-sim-model error_permille=5 p50_us=9000 p99_us=30000 ram_bytes=180000 crash_on_boot=0"))
	f.Add([]byte("edgeota-sim-model"))
	f.Add([]byte("edgeota-sim-model p50_us=1 p50_us=2"))
	f.Add([]byte("edgeota-sim-model metric.low_confidence_permille=80"))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, line []byte) {
		b, isSim, err := ParseHeader(line)
		if err != nil {
			if !isSim || !errors.Is(err, ErrHeader) {
				t.Fatalf("err %v with isSim %v", err, isSim)
			}
			return
		}
		if !isSim {
			if b != Healthy() {
				t.Fatalf("not a sim model but %+v", b)
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted an invalid behaviour: %v", err)
		}
		again, _, err := ParseHeader([]byte(b.Header()))
		if err != nil || again != b {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, b)
		}
	})
}
