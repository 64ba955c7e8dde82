package gwlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/test/testutil"
)

const imageSize = 300 << 10

func TestReadImage(t *testing.T) {
	img := newTestImage(imageSize, *seedFlag)
	for _, tc := range []struct {
		name      string
		builtin   bool // go-coap's block-wise server
		blockSize int
		chunk     int // bytes per ReadAt; 0: the whole image at once
	}{
		{name: "1024", blockSize: 1024},
		{name: "256", blockSize: 256},
		{name: "64", blockSize: 64},
		{name: "1024 in 4 KiB reads", blockSize: 1024, chunk: 4096},
		{name: "256 in odd reads", blockSize: 256, chunk: 1000},
		{name: "builtin server 1024", builtin: true, blockSize: 1024},
		{name: "builtin server 128", builtin: true, blockSize: 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, "127.0.0.1:0", tc.builtin)
			g.addImage(img)
			c := dial(t, g.addr, fastOpts(WithBlockSize(tc.blockSize))...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			im := c.Image(img.digest, int64(len(img.data)))
			got := make([]byte, len(img.data))
			chunk := tc.chunk
			if chunk == 0 {
				chunk = len(got)
			}
			start := time.Now()
			for off := 0; off < len(got); off += chunk {
				end := min(off+chunk, len(got))
				n, err := im.ReadAt(ctx, got[off:end], int64(off))
				if err != nil || n != end-off {
					t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", end-off, off, n, err)
				}
			}
			if !bytes.Equal(got, img.data) {
				t.Fatal("image read differs from the original")
			}
			want := (len(img.data) + tc.blockSize - 1) / tc.blockSize
			g.with(func(g *testGateway) {
				if !tc.builtin && g.blocks != want {
					t.Errorf("gateway answered %d block requests, want %d", g.blocks, want)
				}
				for _, s := range g.sizes {
					if s != tc.blockSize {
						t.Fatalf("block of %d bytes asked, want %d", s, tc.blockSize)
					}
				}
			})
			t.Logf("%d bytes in %d-byte blocks in %v", len(got), tc.blockSize, time.Since(start))
		})
	}
}

// TestReadAtOffsets reads ranges at arbitrary offsets, as a download that
// resumes from a checkpoint does, each through a new Client.
func TestReadAtOffsets(t *testing.T) {
	img := newTestImage(imageSize, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	size := int64(len(img.data))
	rng := rand.New(rand.NewPCG(*seedFlag, 3))
	type span struct{ off, n int64 }
	spans := []span{{0, 1}, {1023, 2}, {1024, 1024}, {size - 1, 1}, {size - 700, 700}, {size - 3000, 2999}}
	for range 20 {
		off := rng.Int64N(size)
		spans = append(spans, span{off, 1 + rng.Int64N(min(size-off, 20000))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, s := range spans {
		bs := []int{1024, 512, 64}[i%3]
		c := dial(t, g.addr, fastOpts(WithBlockSize(bs))...)
		p := make([]byte, s.n)
		n, err := c.Image(img.digest, size).ReadAt(ctx, p, s.off)
		if err != nil || int64(n) != s.n {
			t.Fatalf("ReadAt(%d bytes at %d, blocks of %d) = %d, %v", s.n, s.off, bs, n, err)
		}
		if !bytes.Equal(p, img.data[s.off:s.off+s.n]) {
			t.Fatalf("bytes at %d (+%d) differ", s.off, s.n)
		}
		_ = c.Close()
	}

	c := dial(t, g.addr, fastOpts()...)
	im := c.Image(img.digest, size)
	p := make([]byte, 2048)
	if n, err := im.ReadAt(ctx, p, size-1000); n != 1000 || err != io.EOF || !bytes.Equal(p[:n], img.data[size-1000:]) {
		t.Errorf("ReadAt past the end = %d, %v; want 1000, io.EOF", n, err)
	}
	if n, err := im.ReadAt(ctx, p, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := im.ReadAt(ctx, p, -1); err == nil {
		t.Error("ReadAt at a negative offset: no error")
	}
}

func TestReadImageChanged(t *testing.T) {
	img := newTestImage(imageSize, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	g.with(func(g *testGateway) { g.changeAt = 10 })
	c := dial(t, g.addr, fastOpts()...)
	p := make([]byte, len(img.data))
	n, err := c.Image(img.digest, int64(len(p))).ReadAt(context.Background(), p, 0)
	if !errors.Is(err, ErrImageChanged) {
		t.Fatalf("err = %v, want ErrImageChanged", err)
	}
	if n != 10*1024 || !bytes.Equal(p[:n], img.data[:n]) {
		t.Errorf("read %d bytes before the change, want %d", n, 10*1024)
	}
}

func TestReadImageBusy(t *testing.T) {
	img := newTestImage(8<<10, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	g.with(func(g *testGateway) { g.imageBusy = 1 }) // 5.03, Max-Age 1
	c := dial(t, g.addr, fastOpts()...)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	start := time.Now()
	p := make([]byte, len(img.data))
	n, err := c.Image(img.digest, int64(len(p))).ReadAt(ctx, p, 0)
	if err != nil || n != len(p) || !bytes.Equal(p, img.data) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("read took %v; the 5.03 asked to wait 1 s", d)
	}

	// A 5.03 that lasts longer than the context: the context's error.
	g.with(func(g *testGateway) { g.imageBusy = 100 })
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := c.Image(img.digest, int64(len(p))).ReadAt(short, p, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestReadImageNotCached(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts()...)
	img := newTestImage(100, 1)
	p := make([]byte, 100)
	if _, err := c.Image(img.digest, 100).ReadAt(context.Background(), p, 0); !errors.Is(err, ErrNotCached) {
		t.Fatalf("err = %v, want ErrNotCached", err)
	}
}

func TestReadImageShort(t *testing.T) {
	img := newTestImage(10<<10, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	g.with(func(g *testGateway) { g.truncate = 5000 })
	c := dial(t, g.addr, fastOpts()...)
	p := make([]byte, len(img.data))
	n, err := c.Image(img.digest, int64(len(p))).ReadAt(context.Background(), p, 0)
	if err != io.ErrUnexpectedEOF || n != 5000 || !bytes.Equal(p[:n], img.data[:n]) {
		t.Fatalf("ReadAt = %d, %v; want 5000, io.ErrUnexpectedEOF", n, err)
	}
}

func TestReadImageRefused(t *testing.T) {
	img := newTestImage(10<<10, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	g.with(func(g *testGateway) { g.truncate = 5000 })
	c := dial(t, g.addr, fastOpts()...)
	// A resumed read past the end of the gateway's (truncated) image: the
	// gateway refuses the block.
	p := make([]byte, 1024)
	_, err := c.Image(img.digest, int64(len(img.data))).ReadAt(context.Background(), p, 8192)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != codes.BadOption || !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v, want a 4.02 StatusError", err)
	}
}

// TestReadImageLossy reads the image through a relay that drops 20% of the
// datagrams each way: go-coap's block-wise client stalls on the first lost
// continuation; the per-block loop must not.
func TestReadImageLossy(t *testing.T) {
	img := newTestImage(imageSize, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	t.Logf("relay seed %d (-gwlink.seed)", *seedFlag)
	relay := newRelay(t, g.addr, 0.20, *seedFlag)
	c := dial(t, relay.addr(), fastOpts(WithRequestTimeout(2*time.Second))...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	p := make([]byte, len(img.data))
	n, err := c.Image(img.digest, int64(len(p))).ReadAt(ctx, p, 0)
	if err != nil || n != len(p) {
		t.Fatalf("ReadAt = %d, %v after %v", n, err, time.Since(start))
	}
	if !bytes.Equal(p, img.data) {
		t.Fatal("image read differs from the original")
	}
	t.Logf("%d bytes in %v; relay dropped %d of %d datagrams", n, time.Since(start), relay.dropped.Load(), relay.dropped.Load()+relay.passed.Load())
}

// BenchmarkReadImage256K reads a 256 KiB image in 1024-byte blocks over
// loopback, each iteration through a new Client: go-coap's UDP server scans
// a connection's whole response cache (every answer of the last 247 s) on
// each datagram, so one endpoint reading the image again and again would
// measure that scan, not the client.
func BenchmarkReadImage256K(b *testing.B) {
	img := newTestImage(256<<10, 1)
	g := newGateway(b, "127.0.0.1:0", false)
	g.addImage(img)
	p := make([]byte, len(img.data))
	ctx := context.Background()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		b.StopTimer()
		c, err := Dial(ctx, g.addr, testNode, WithLogger(testLogger()))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := c.Image(img.digest, int64(len(img.data))).ReadAt(ctx, p, 0); err != nil || n != len(p) {
			b.Fatal(n, err)
		}
		b.StopTimer()
		_ = c.Close()
		b.StartTimer()
	}
}

// TestReadImageRotates: a connection that carried maxRequestsPerConn
// requests is replaced (a fresh message-id space) and the read goes on.
func TestReadImageRotates(t *testing.T) {
	defer func(n int) { maxRequestsPerConn = n }(maxRequestsPerConn)
	maxRequestsPerConn = 50
	img := newTestImage(imageSize, *seedFlag)
	g := newGateway(t, "127.0.0.1:0", false)
	g.addImage(img)
	c := dial(t, g.addr, fastOpts()...)
	p := make([]byte, len(img.data))
	n, err := c.Image(img.digest, int64(len(p))).ReadAt(context.Background(), p, 0)
	if err != nil || n != len(p) || !bytes.Equal(p, img.data) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	if want := uint64((len(p)/1024 + 49) / 50); gen != want {
		t.Errorf("%d connections for %d requests, want %d", gen, len(p)/1024, want)
	}
}
