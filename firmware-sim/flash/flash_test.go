package flash_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/firmware-sim/flash"
)

// device is the Flash interface of package nodeagent, copied so that this
// package exports no interface of its own: the consumer owns it.
type device interface {
	Size() int64
	EraseSize() int
	WriteSize() int
	ReadAt(p []byte, off int64) (int, error)
	Program(off int64, p []byte) error
	Erase(off int64, n int64) error
}

var (
	_ device = (*flash.Sim)(nil)
	_ device = (*flash.File)(nil)
)

// counted is a device with the counters both implementations offer.
type counted interface {
	device
	Ops() uint64
	Stats() flash.Stats
	EraseCounts() []uint64
}

var seedFlag = flag.Int64("flash.seed", 1, "seed for power-cut randomness")

// testSeed returns the seed of the run and logs it, so that a failure can be
// replayed with -flash.seed.
func testSeed(t testing.TB) int64 {
	t.Helper()
	t.Logf("seed %d (override with -flash.seed)", *seedFlag)
	return *seedFlag
}

// geometries are the shapes every conformance test runs against.
var geometries = []struct{ erase, write int }{
	{4096, 1}, {4096, 8}, {4096, 16},
	{256, 1}, {256, 8}, {256, 16},
}

// newSim returns a Sim whose counters are checked for consistency at
// cleanup.
func newSim(t testing.TB, size int64, opts ...flash.Option) *flash.Sim {
	t.Helper()
	s, err := flash.New(size, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkCounters(t, s) })
	return s
}

// newFile returns a File in a fresh temporary directory, closed and checked
// at cleanup.
func newFile(t testing.TB, size int64, opts ...flash.Option) *flash.File {
	t.Helper()
	f, err := flash.OpenFile(filepath.Join(t.TempDir(), "flash.img"), size, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checkCounters(t, f)
		if err := f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			t.Error(err)
		}
	})
	return f
}

// checkCounters checks the invariants that hold between a device's counters.
func checkCounters(t testing.TB, d counted) {
	t.Helper()
	st := d.Stats()
	if st.Programs+st.Erases != d.Ops() {
		t.Errorf("invariant: Programs %d + Erases %d != Ops %d", st.Programs, st.Erases, d.Ops())
	}
	if st.BytesProgrammed%uint64(d.WriteSize()) != 0 {
		t.Errorf("invariant: BytesProgrammed %d not a multiple of write size %d", st.BytesProgrammed, d.WriteSize())
	}
	if n := len(d.EraseCounts()); int64(n) != d.Size()/int64(d.EraseSize()) {
		t.Errorf("invariant: %d erase counters for %d blocks", n, d.Size()/int64(d.EraseSize()))
	}
}

// forEachDevice runs fn against a Sim and a File of size bytes in every
// geometry.
func forEachDevice(t *testing.T, blocks int64, fn func(t *testing.T, d counted)) {
	for _, g := range geometries {
		opts := []flash.Option{flash.WithEraseSize(g.erase), flash.WithWriteSize(g.write)}
		size := blocks * int64(g.erase)
		t.Run(fmt.Sprintf("sim/erase=%d/write=%d", g.erase, g.write), func(t *testing.T) {
			fn(t, newSim(t, size, opts...))
		})
		t.Run(fmt.Sprintf("file/erase=%d/write=%d", g.erase, g.write), func(t *testing.T) {
			fn(t, newFile(t, size, opts...))
		})
	}
}

// contents reads the whole device.
func contents(t testing.TB, d device) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// pattern returns n bytes that are neither all erased nor all zero.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x5A ^ i*7)
	}
	return b
}

func TestRefused(t *testing.T) {
	forEachDevice(t, 4, func(t *testing.T, d counted) {
		ws, es, size := int64(d.WriteSize()), int64(d.EraseSize()), d.Size()
		// Unit 1 of block 0 is programmed; the rest is erased.
		if err := d.Program(ws, pattern(int(ws))); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			skip    bool
			op      func() error
			want    error
			wantMsg string
		}{
			{name: "program misaligned offset", skip: ws == 1,
				op: func() error { return d.Program(2*ws+ws/2, pattern(int(ws))) }, want: flash.ErrAlignment},
			{name: "program misaligned length", skip: ws == 1,
				op: func() error { return d.Program(2*ws, pattern(int(ws+ws/2))) }, want: flash.ErrAlignment},
			{name: "program negative offset",
				op: func() error { return d.Program(-ws, pattern(int(ws))) }, want: flash.ErrRange},
			{name: "program past end",
				op: func() error { return d.Program(size-ws, pattern(int(2*ws))) }, want: flash.ErrRange},
			{name: "program offset beyond end",
				op: func() error { return d.Program(size, pattern(int(ws))) }, want: flash.ErrRange},
			{name: "program offset overflowing",
				op: func() error { return d.Program(math.MaxInt64-ws+1, pattern(int(ws))) }, want: flash.ErrRange},
			{name: "program over programmed unit",
				op:   func() error { return d.Program(0, pattern(int(4*ws))) },
				want: flash.ErrNotErased, wantMsg: fmt.Sprintf("not erased at %#x", ws)},
			{name: "program erased value over programmed unit",
				op:   func() error { return d.Program(ws, bytes.Repeat([]byte{0xFF}, int(ws))) },
				want: flash.ErrNotErased, wantMsg: fmt.Sprintf("not erased at %#x", ws)},
			{name: "program only clearing more bits",
				op:   func() error { return d.Program(ws, make([]byte, ws)) },
				want: flash.ErrNotErased},
			{name: "erase misaligned offset",
				op: func() error { return d.Erase(es/2, es) }, want: flash.ErrAlignment},
			{name: "erase misaligned length",
				op: func() error { return d.Erase(0, es/2) }, want: flash.ErrAlignment},
			{name: "erase negative offset",
				op: func() error { return d.Erase(-es, es) }, want: flash.ErrRange},
			{name: "erase negative length",
				op: func() error { return d.Erase(es, -es) }, want: flash.ErrRange},
			{name: "erase past end",
				op: func() error { return d.Erase(size-es, 2*es) }, want: flash.ErrRange},
			{name: "erase offset overflowing",
				op: func() error { return d.Erase(es, math.MaxInt64-es+1) }, want: flash.ErrRange},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.skip {
					t.Skip("not possible with this write size")
				}
				before, ops := contents(t, d), d.Ops()
				err := tt.op()
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if !strings.HasPrefix(err.Error(), "flash: ") || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %q, want prefix %q and %q", err, "flash: ", tt.wantMsg)
				}
				if got := d.Ops(); got != ops {
					t.Errorf("Ops = %d after refusal, want %d", got, ops)
				}
				if !bytes.Equal(contents(t, d), before) {
					t.Error("refused operation changed the contents")
				}
			})
		}
	})
}

func TestProgramEraseRead(t *testing.T) {
	forEachDevice(t, 4, func(t *testing.T, d counted) {
		ws, es, size := d.WriteSize(), int64(d.EraseSize()), d.Size()
		if got := contents(t, d); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, int(size))) {
			t.Fatal("new device is not erased")
		}

		data := pattern(3 * ws)
		off := es + int64(ws) // inside block 1
		if err := d.Program(off, data); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data))
		if n, err := d.ReadAt(got, off); err != nil || n != len(got) || !bytes.Equal(got, data) {
			t.Fatalf("ReadAt = %d, %v, %x; want %x", n, err, got, data)
		}
		// The neighbouring units are still erased and can be programmed.
		if err := d.Program(off-int64(ws), pattern(ws)); err != nil {
			t.Errorf("program unit before: %v", err)
		}
		if err := d.Program(off+int64(len(data)), pattern(ws)); err != nil {
			t.Errorf("program unit after: %v", err)
		}

		// Zero-length operations are neither refused nor counted.
		if err := d.Program(0, nil); err != nil {
			t.Errorf("empty Program: %v", err)
		}
		if err := d.Erase(0, 0); err != nil {
			t.Errorf("empty Erase: %v", err)
		}

		// One Erase over blocks 1 and 2 is one operation.
		if err := d.Erase(es, 2*es); err != nil {
			t.Fatal(err)
		}
		if got := contents(t, d); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, int(size))) {
			t.Error("erase left programmed bytes")
		}
		if err := d.Program(off, data); err != nil {
			t.Errorf("program after erase: %v", err)
		}

		want := flash.Stats{Programs: 4, Erases: 1, BytesProgrammed: uint64(8 * ws)}
		if got := d.Stats(); got != want {
			t.Errorf("Stats = %+v, want %+v", got, want)
		}
		if got := d.Ops(); got != 5 {
			t.Errorf("Ops = %d, want 5", got)
		}
		if got, want := d.EraseCounts(), []uint64{0, 1, 1, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("EraseCounts = %v, want %v", got, want)
		}
	})
}

func TestReadAt(t *testing.T) {
	forEachDevice(t, 1, func(t *testing.T, d counted) {
		size := d.Size()
		tests := []struct {
			name    string
			off     int64
			len     int
			wantN   int
			wantErr error
		}{
			{"whole device", 0, int(size), int(size), nil},
			{"empty", 5, 0, 0, nil},
			{"across the end", size - 4, 8, 4, io.EOF},
			{"at the end", size, 8, 0, io.EOF},
			{"beyond the end", size + 100, 8, 0, io.EOF},
			{"negative offset", -1, 8, 0, flash.ErrRange},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n, err := d.ReadAt(make([]byte, tt.len), tt.off)
				if n != tt.wantN || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Errorf("ReadAt(%d bytes, %d) = %d, %v; want %d, %v", tt.len, tt.off, n, err, tt.wantN, tt.wantErr)
				}
			})
		}
		if d.Ops() != 0 {
			t.Errorf("reads were counted: Ops = %d", d.Ops())
		}
	})
}

func TestGeometry(t *testing.T) {
	tests := []struct {
		name string
		size int64
		opts []flash.Option
		ok   bool
	}{
		{"defaults", 64 << 10, nil, true},
		{"write size 1", 4096, []flash.Option{flash.WithWriteSize(1)}, true},
		{"write size 16", 4096, []flash.Option{flash.WithWriteSize(16)}, true},
		{"write size equals erase size", 4096, []flash.Option{flash.WithWriteSize(4096)}, true},
		{"small erase blocks", 1024, []flash.Option{flash.WithEraseSize(256), flash.WithWriteSize(16)}, true},
		{"erase size not a power of two", 3 * 1024, []flash.Option{flash.WithEraseSize(3 * 1024)}, true},
		{"zero size", 0, nil, false},
		{"negative size", -4096, nil, false},
		{"size not a multiple of erase size", 4096 + 256, nil, false},
		{"zero write size", 4096, []flash.Option{flash.WithWriteSize(0)}, false},
		{"negative write size", 4096, []flash.Option{flash.WithWriteSize(-8)}, false},
		{"write size not a power of two", 4096, []flash.Option{flash.WithWriteSize(12)}, false},
		{"write size above erase size", 4096, []flash.Option{flash.WithEraseSize(256), flash.WithWriteSize(512)}, false},
		{"write size not dividing erase size", 4000, []flash.Option{flash.WithEraseSize(1000), flash.WithWriteSize(16)}, false},
		{"zero erase size", 4096, []flash.Option{flash.WithEraseSize(0)}, false},
		{"negative erase size", 4096, []flash.Option{flash.WithEraseSize(-4096)}, false},
	}
	for _, tt := range tests {
		t.Run("sim/"+tt.name, func(t *testing.T) {
			s, err := flash.New(tt.size, tt.opts...)
			checkGeometryResult(t, s, err, tt.ok)
		})
		t.Run("file/"+tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := flash.OpenFile(filepath.Join(dir, "flash.img"), tt.size, tt.opts...)
			checkGeometryResult(t, f, err, tt.ok)
			if err == nil {
				if err := f.Close(); err != nil {
					t.Error(err)
				}
				return
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("refused geometry left %d files behind", len(left))
			}
		})
	}
}

func checkGeometryResult[D device](t *testing.T, d D, err error, ok bool) {
	t.Helper()
	switch {
	case ok && err != nil:
		t.Fatalf("err = %v, want nil", err)
	case !ok && !errors.Is(err, flash.ErrGeometry):
		t.Fatalf("err = %v, want ErrGeometry", err)
	case !ok && !strings.HasPrefix(err.Error(), "flash: "):
		t.Errorf("err = %q, want prefix %q", err, "flash: ")
	case ok && d.Size()%int64(d.EraseSize()) != 0:
		t.Errorf("size %d not a multiple of erase size %d", d.Size(), d.EraseSize())
	}
}
