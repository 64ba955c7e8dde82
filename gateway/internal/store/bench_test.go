package store

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// BenchmarkReadAt1K reads 1 KiB blocks of a 4 MiB image in order, the way
// an image transfer does.
func BenchmarkReadAt1K(b *testing.B) {
	k := testKeys(b, 1)
	db, _ := openTest(b)
	image := randomImage(rand.New(rand.NewPCG(1, 1)), 4<<20)
	m := putImage(b, db, k, image, 1)
	p := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	off := int64(0)
	for b.Loop() {
		if _, err := db.ReadAt(m.Digest, p, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(p))) % int64(len(image))
	}
}

// BenchmarkReadAt1KParallel is BenchmarkReadAt1K from GOMAXPROCS goroutines.
func BenchmarkReadAt1KParallel(b *testing.B) {
	k := testKeys(b, 1)
	db, _ := openTest(b)
	image := randomImage(rand.New(rand.NewPCG(1, 1)), 4<<20)
	m := putImage(b, db, k, image, 1)
	b.ReportAllocs()
	b.SetBytes(1024)
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 1024)
		off := int64(0)
		for pb.Next() {
			if _, err := db.ReadAt(m.Digest, p, off); err != nil {
				b.Fatal(err)
			}
			off = (off + int64(len(p))) % int64(len(image))
		}
	})
}

// BenchmarkPutModel4MiB puts a new 4 MiB image per iteration, fsyncs
// included; the model is deleted again outside the timer.
func BenchmarkPutModel4MiB(b *testing.B) {
	k := testKeys(b, 1)
	db, _ := openTest(b)
	rng := rand.New(rand.NewPCG(2, 2))
	b.ReportAllocs()
	b.SetBytes(4 << 20)
	for b.Loop() {
		b.StopTimer()
		image := randomImage(rng, 4<<20)
		signed := k.sign(b, manifestFor(image, 1))
		b.StartTimer()
		m, err := db.PutModel(signed, bytes.NewReader(image), k.trust)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := db.DeleteModel(m.Digest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
