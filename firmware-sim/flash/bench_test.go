package flash_test

import (
	"testing"

	"edgeota/firmware-sim/flash"
)

func BenchmarkProgram1K(b *testing.B) {
	s, err := flash.New(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	data := pattern(1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	off := int64(0)
	for b.Loop() {
		if off == s.Size() {
			b.StopTimer()
			if err := s.Erase(0, s.Size()); err != nil {
				b.Fatal(err)
			}
			off = 0
			b.StartTimer()
		}
		if err := s.Program(off, data); err != nil {
			b.Fatal(err)
		}
		off += int64(len(data))
	}
}

func BenchmarkErase4K(b *testing.B) {
	s, err := flash.New(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(4096)
	off := int64(0)
	for b.Loop() {
		if err := s.Erase(off, 4096); err != nil {
			b.Fatal(err)
		}
		off = (off + 4096) % s.Size()
	}
}
