package store

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"testing/iotest"
	"time"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

func TestPutModel(t *testing.T) {
	const cs = DefaultChunkSize
	cases := []struct {
		name      string
		chunkSize int
		size      int
	}{
		{"1 byte", cs, 1},
		{"one chunk less a byte", cs, cs - 1},
		{"exactly one chunk", cs, cs},
		{"one chunk and a byte", cs, cs + 1},
		{"5 MiB, two staging transactions", cs, 5 << 20},
		{"odd chunk size, partial last chunk", 1000, 10_500},
		{"odd chunk size, full last chunk", 1000, 10_000},
		{"image smaller than a chunk of 4 MiB", MaxChunkSize, 3000},
	}
	k := testKeys(t, 1)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := testutil.NewFakeClock()
			db, _ := openTest(t, WithChunkSize(c.chunkSize), WithClock(clock.Now))
			image := randomImage(rand.New(rand.NewPCG(uint64(i), 1)), c.size)
			signed := k.sign(t, manifestFor(image, 7))
			m, err := db.PutModel(signed, iotest.HalfReader(bytes.NewReader(image)), k.trust)
			if err != nil {
				t.Fatal(err)
			}
			want := manifestFor(image, 7)
			if m.Digest != want.Digest || m.Size != int64(c.size) || m.Manifest.Seq != 7 || !bytes.Equal(m.Signed, signed) {
				t.Errorf("model = %s size %d seq %d, want %s size %d seq 7", m.Digest, m.Size, m.Manifest.Seq, want.Digest, c.size)
			}
			if !m.Added.Equal(clock.Now()) || !m.LastUsed.Equal(clock.Now()) {
				t.Errorf("added %v, last used %v, want %v", m.Added, m.LastUsed, clock.Now())
			}
			got, err := db.Model(m.Digest)
			if err != nil || got.Digest != m.Digest || !bytes.Equal(got.Signed, signed) {
				t.Fatalf("Model = %+v, %v", got, err)
			}
			if b := readAll(t, db, m.Digest, m.Size, 1024); !bytes.Equal(b, image) {
				t.Errorf("image read back differs (%d bytes, want %d)", len(b), len(image))
			}
			if n, err := db.CacheBytes(); n != int64(c.size) || err != nil {
				t.Errorf("CacheBytes = %d, %v; want %d", n, err, c.size)
			}
		})
	}
}

// errReader returns data, then err.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// countingReader is an endless stream of bytes that counts what was read.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	clear(p)
	r.n += int64(len(p))
	return len(p), nil
}

func TestPutModelRefused(t *testing.T) {
	k := testKeys(t, 1)
	other := testKeys(t, 2)
	rng := rand.New(rand.NewPCG(2, 2))
	small := randomImage(rng, 3000)
	big := randomImage(rng, 5<<20+77)
	errBroken := errors.New("broken pipe")
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 1
		return b
	}
	hugeManifest := manifestFor(small, 1)
	hugeManifest.Size = math.MaxUint64
	cases := []struct {
		name   string
		signed []byte
		image  io.Reader
		want   error
	}{
		{"bad signature", flip(k.sign(t, manifestFor(small, 1)), len(k.sign(t, manifestFor(small, 1)))-1), bytes.NewReader(small), sign.ErrSignature},
		{"unknown key", other.sign(t, manifestFor(small, 1)), bytes.NewReader(small), sign.ErrUnknownKey},
		{"not a COSE envelope", []byte("hello"), bytes.NewReader(small), sign.ErrNotTagged},
		{"wrong digest", k.sign(t, manifestFor(small, 1)), bytes.NewReader(flip(small, 2999)), ErrDigest},
		{"wrong digest, several staging transactions", k.sign(t, manifestFor(big, 1)), bytes.NewReader(flip(big, 0)), ErrDigest},
		{"one byte too long", k.sign(t, manifestFor(small, 1)), bytes.NewReader(append(bytes.Clone(small), 0)), ErrSize},
		{"much too long", k.sign(t, manifestFor(small, 1)), bytes.NewReader(big), ErrSize},
		{"truncated", k.sign(t, manifestFor(small, 1)), bytes.NewReader(small[:2999]), ErrSize},
		{"truncated, several staging transactions", k.sign(t, manifestFor(big, 1)), bytes.NewReader(big[:5<<20]), ErrSize},
		{"empty reader", k.sign(t, manifestFor(small, 1)), bytes.NewReader(nil), ErrSize},
		{"manifest size 2^64-1", k.sign(t, hugeManifest), bytes.NewReader(small), ErrSize},
		{"reader error at once", k.sign(t, manifestFor(small, 1)), iotest.ErrReader(errBroken), errBroken},
		{"reader error midway", k.sign(t, manifestFor(big, 1)), &errReader{big[:4<<20+5], errBroken}, errBroken},
		{"reader timeout", k.sign(t, manifestFor(small, 1)), iotest.TimeoutReader(bytes.NewReader(small)), iotest.ErrTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, _ := openTest(t)
			m, err := db.PutModel(c.signed, c.image, k.trust)
			if !errors.Is(err, c.want) {
				t.Fatalf("PutModel = %v, %v; want %v", m, err, c.want)
			}
			if models, images, staging := bucketCounts(t, db); models+images+staging != 0 {
				t.Errorf("after a refused put: %d models, %d images, %d staging buckets", models, images, staging)
			}
			if ms, err := db.Models(); len(ms) != 0 || err != nil {
				t.Errorf("Models = %v, %v", ms, err)
			}
		})
	}
}

// An endless image is refused after reading one byte more than the
// manifest's size.
func TestPutModelStopsReadingPastSize(t *testing.T) {
	k := testKeys(t, 1)
	for _, size := range []int{100, 5<<20 + 3} {
		db, _ := openTest(t)
		image := make([]byte, size)
		r := new(countingReader)
		_, err := db.PutModel(k.sign(t, manifestFor(image, 1)), r, k.trust)
		if !errors.Is(err, ErrSize) {
			t.Fatalf("size %d: %v, want ErrSize", size, err)
		}
		if r.n != int64(size)+1 {
			t.Errorf("size %d: read %d bytes, want %d", size, r.n, size+1)
		}
	}
}

func TestPutModelAgain(t *testing.T) {
	k := testKeys(t, 1)
	db, _ := openTest(t)
	image := randomImage(rand.New(rand.NewPCG(3, 3)), 70_000)
	first := putImage(t, db, k, image, 5)
	img := func() io.Reader { return bytes.NewReader(image) }

	// Same manifest: the image is checked again, nothing is rewritten.
	m, err := db.PutModel(first.Signed, img(), k.trust)
	if err != nil || !bytes.Equal(m.Signed, first.Signed) || !m.Added.Equal(first.Added) {
		t.Fatalf("same put again = %+v, %v", m, err)
	}
	// The wrong image for a cached digest is refused and changes nothing.
	wrongImage := bytes.Clone(image)
	wrongImage[500] ^= 1
	if _, err := db.PutModel(k.sign(t, manifestFor(image, 7)), bytes.NewReader(wrongImage), k.trust); !errors.Is(err, ErrDigest) {
		t.Fatalf("wrong image for a cached digest: %v, want ErrDigest", err)
	}
	if got, _ := db.Model(first.Digest); got.Manifest.Seq != 5 {
		t.Fatalf("a refused put changed the manifest to seq %d", got.Manifest.Seq)
	}
	// Re-signed under a higher seq: the new manifest replaces the stored one.
	higher := k.sign(t, manifestFor(image, 9))
	if m, err = db.PutModel(higher, img(), k.trust); err != nil || m.Manifest.Seq != 9 || !bytes.Equal(m.Signed, higher) {
		t.Fatalf("higher seq = %+v, %v", m, err)
	}
	// A lower seq leaves the highest.
	if m, err = db.PutModel(k.sign(t, manifestFor(image, 6)), img(), k.trust); err != nil || m.Manifest.Seq != 9 {
		t.Fatalf("lower seq = %+v, %v", m, err)
	}
	// Still verified first.
	unread := iotest.ErrReader(errors.New("the image must not be read for a bad manifest"))
	bad := bytes.Clone(higher)
	bad[len(bad)-1] ^= 1
	if _, err := db.PutModel(bad, unread, k.trust); !errors.Is(err, sign.ErrSignature) {
		t.Fatalf("bad signature on a stored digest: %v", err)
	}
	// Same digest, another size: refused.
	wrong := manifestFor(image, 10)
	wrong.Size++
	if _, err := db.PutModel(k.sign(t, wrong), img(), k.trust); !errors.Is(err, ErrSize) {
		t.Fatalf("stored digest with another size: %v, want ErrSize", err)
	}
	if got, _ := db.Model(first.Digest); got.Manifest.Seq != 9 {
		t.Errorf("stored seq %d, want 9", got.Manifest.Seq)
	}
	if models, images, _ := bucketCounts(t, db); models != 1 || images != 1 {
		t.Errorf("%d models, %d images; want 1, 1", models, images)
	}
}

func TestReadAt(t *testing.T) {
	const cs = 1000
	k := testKeys(t, 1)
	db, _ := openTest(t, WithChunkSize(cs))
	rng := rand.New(rand.NewPCG(4, 4))
	images := map[string][]byte{
		"partial last chunk": randomImage(rng, 10*cs+500),
		"full last chunk":    randomImage(rng, 10*cs),
		"one byte":           randomImage(rng, 1),
	}
	for name, image := range images {
		t.Run(name, func(t *testing.T) {
			m := putImage(t, db, k, image, 1)
			size := int64(len(image))
			check := func(off int64, n int) {
				t.Helper()
				p := make([]byte, n)
				got, err := db.ReadAt(m.Digest, p, off)
				wantN := int(max(0, min(int64(n), size-off)))
				var wantErr error
				if wantN < n || off >= size { // like bytes.Reader, EOF at the end even for len 0
					wantErr = io.EOF
				}
				if got != wantN || err != wantErr {
					t.Fatalf("ReadAt(off %d, len %d) = %d, %v; want %d, %v", off, n, got, err, wantN, wantErr)
				}
				if wantN > 0 && !bytes.Equal(p[:got], image[off:off+int64(got)]) {
					t.Fatalf("ReadAt(off %d, len %d): bytes differ", off, n)
				}
			}
			// Every chunk boundary, with lengths that stop short of, at and past it.
			for b := int64(0); b <= size+cs; b += cs {
				for _, off := range []int64{b - 1, b, b + 1} {
					if off < 0 {
						continue
					}
					for _, n := range []int{0, 1, 2, cs - 1, cs, cs + 1, 2*cs + 1, 1024} {
						check(off, n)
					}
				}
			}
			for _, off := range []int64{size - 1, size, size + 1, size + 1<<20} {
				check(max(0, off), 10)
			}
			check(0, int(size))
			check(0, int(size)+1)
			for range 2000 {
				off := rng.Int64N(size + 10)
				check(off, rng.IntN(3*cs))
			}
			// The io.ReaderAt contract, through a SectionReader.
			if err := iotest.TestReader(io.NewSectionReader(readerAt{db, m.Digest}, 0, size), image); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := db.ReadAt(protocol.Digest{1}, make([]byte, 4), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown digest: %v, want ErrNotFound", err)
	}
	if _, err := db.ReadAt(manifestFor(images["one byte"], 1).Digest, make([]byte, 4), -1); err == nil {
		t.Error("negative offset accepted")
	}
}

type readerAt struct {
	db *DB
	d  protocol.Digest
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) { return r.db.ReadAt(r.d, p, off) }

// ReadAt allocates only what a bbolt read transaction does.
func TestReadAtAllocs(t *testing.T) {
	k := testKeys(t, 1)
	db, _ := openTest(t)
	image := randomImage(rand.New(rand.NewPCG(5, 5)), 1<<20)
	m := putImage(t, db, k, image, 1)
	p := make([]byte, 1024)
	off := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := db.ReadAt(m.Digest, p, off); err != nil {
			t.Fatal(err)
		}
		off = (off + 1024) % int64(len(image))
	})
	t.Logf("%.1f allocations per ReadAt", allocs)
	if allocs > maxReadAtAllocs {
		t.Errorf("%.1f allocations per ReadAt, want at most %d", allocs, maxReadAtAllocs)
	}
}

// maxReadAtAllocs bounds what bbolt v1.5.0 allocates for ReadAt: the Tx,
// its meta and root bucket (3); per bucket lookup a cursor stack, the
// bucket handle and, when the bucket header is unaligned in its page, a
// copy of it (2 or 3, twice); the chunk cursor's stack, one per tree level
// (2 for a 1 MiB image, 3 past about 170 chunks). 10 measured; ReadAt adds
// none of its own.
const maxReadAtAllocs = 12

func TestEvict(t *testing.T) {
	k := testKeys(t, 1)
	clock := testutil.NewFakeClock()
	db, _ := openTest(t, WithClock(clock.Now))
	rng := rand.New(rand.NewPCG(6, 6))
	var ms []*Model
	for i := range 6 { // put in order a..f, 1000 bytes each, a minute apart
		ms = append(ms, putImage(t, db, k, randomImage(rng, 1000), uint64(i+1)))
		clock.Advance(time.Minute)
	}
	a, b, c, d, e, f := ms[0], ms[1], ms[2], ms[3], ms[4], ms[5]
	if err := db.Touch(a.Digest); err != nil { // a is now the most recently used
		t.Fatal(err)
	}
	if err := db.Touch(protocol.Digest{9}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Touch(unknown) = %v, want ErrNotFound", err)
	}
	if got, _ := db.Model(a.Digest); !got.LastUsed.Equal(clock.Now()) {
		t.Errorf("LastUsed after Touch = %v, want %v", got.LastUsed, clock.Now())
	}
	if err := db.Assign([]string{"n1", "n2"}, c.Signed); err != nil { // c assigned
		t.Fatal(err)
	}
	if _, err := db.SetStandingRule(e.Signed); err != nil { // e under the standing rule
		t.Fatal(err)
	}
	// LRU order is b, c, d, e, f, a; c and e are protected.
	steps := []struct {
		limit int64
		want  []*Model
	}{
		{6000, nil},
		{5000, []*Model{b}},
		{3500, []*Model{d, f}},
		{0, []*Model{a}},
		{0, nil},
	}
	for _, s := range steps {
		got, err := db.Evict(s.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(s.want) {
			t.Fatalf("Evict(%d) = %v, want %d models", s.limit, got, len(s.want))
		}
		for i := range got {
			if got[i] != s.want[i].Digest {
				t.Errorf("Evict(%d)[%d] = %s, want %s", s.limit, i, got[i], s.want[i].Digest)
			}
			if _, err := db.Model(got[i]); !errors.Is(err, ErrNotFound) {
				t.Errorf("evicted %s still there: %v", got[i], err)
			}
		}
	}
	if n, _ := db.CacheBytes(); n != 2000 {
		t.Errorf("CacheBytes = %d, want 2000 (the assigned models)", n)
	}
	if _, err := db.Evict(-1); err == nil {
		t.Error("negative limit accepted")
	}

	// Delete refuses assigned models until they are not.
	if err := db.DeleteModel(c.Digest); !errors.Is(err, ErrAssigned) {
		t.Errorf("DeleteModel(assigned) = %v, want ErrAssigned", err)
	}
	if err := db.DeleteModel(e.Digest); !errors.Is(err, ErrAssigned) {
		t.Errorf("DeleteModel(standing rule) = %v, want ErrAssigned", err)
	}
	if err := db.Unassign([]string{"n1"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteModel(c.Digest); !errors.Is(err, ErrAssigned) {
		t.Errorf("DeleteModel(assigned to n2) = %v, want ErrAssigned", err)
	}
	if err := db.Unassign([]string{"n2"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteModel(c.Digest); err != nil {
		t.Errorf("DeleteModel(unassigned) = %v", err)
	}
	if err := db.DeleteModel(c.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteModel(deleted) = %v, want ErrNotFound", err)
	}
	if _, err := db.SetStandingRule(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Evict(0); err != nil || len(got) != 1 || got[0] != e.Digest {
		t.Errorf("Evict(0) after clearing the rule = %v, %v; want [%s]", got, err, e.Digest)
	}
	if models, images, _ := bucketCounts(t, db); models+images != 0 {
		t.Errorf("%d models and %d images left", models, images)
	}
}

// A model assigned before it was cached is protected once it arrives.
func TestEvictAssignedBeforeCached(t *testing.T) {
	k := testKeys(t, 1)
	db, _ := openTest(t)
	image := randomImage(rand.New(rand.NewPCG(7, 7)), 500)
	signed := k.sign(t, manifestFor(image, 1))
	if err := db.Assign([]string{"n1"}, signed); err != nil {
		t.Fatal(err)
	}
	putImage(t, db, k, image, 1)
	if got, err := db.Evict(0); len(got) != 0 || err != nil {
		t.Errorf("Evict = %v, %v; want nothing", got, err)
	}
}
