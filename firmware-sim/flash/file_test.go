package flash_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"edgeota/firmware-sim/flash"
)

func TestOpenFileCreatesErased(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flash.img")
	f, err := flash.OpenFile(path, 200<<10) // more than one fill chunk, not a multiple of it
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 200<<10 || fi.Mode().Perm() != 0o600 {
		t.Errorf("file is %d bytes, mode %v; want %d bytes, mode 0600", fi.Size(), fi.Mode().Perm(), 200<<10)
	}
	if got := contents(t, f); !isErased(got) {
		t.Error("new file is not erased")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the image", len(entries))
	}
}

func TestFilePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flash.img")
	opts := []flash.Option{flash.WithEraseSize(256), flash.WithWriteSize(16)}
	f, err := flash.OpenFile(path, 4096, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Program(256, pattern(64)); err != nil {
		t.Fatal(err)
	}
	if err := f.Erase(0, 256); err != nil {
		t.Fatal(err)
	}
	want := contents(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f, err = flash.OpenFile(path, 4096, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !bytes.Equal(contents(t, f), want) {
		t.Error("contents changed across Close and OpenFile")
	}
	if f.Ops() != 0 || f.EraseCount(0) != 0 {
		t.Errorf("counters carried across opens: Ops %d, EraseCount(0) %d", f.Ops(), f.EraseCount(0))
	}
	if err := f.Program(256, pattern(16)); !errors.Is(err, flash.ErrNotErased) {
		t.Errorf("program over persisted data: err = %v, want ErrNotErased", err)
	}
}

func TestOpenFileSizeMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flash.img")
	f, err := flash.OpenFile(path, 8192)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{4096, 16384} {
		if _, err := flash.OpenFile(path, size); !errors.Is(err, flash.ErrGeometry) {
			t.Errorf("OpenFile(%d) of an 8192-byte file: err = %v, want ErrGeometry", size, err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 8192 {
		t.Errorf("refused open touched the file: %v, %v", fi, err)
	}
	if _, err := flash.OpenFile(t.TempDir(), 4096); err == nil {
		t.Error("OpenFile of a directory succeeded")
	}
	if _, err := flash.OpenFileReadOnly(t.TempDir()); !errors.Is(err, flash.ErrGeometry) {
		t.Errorf("OpenFileReadOnly of a directory: err = %v, want ErrGeometry", err)
	}
}

func TestOpenFileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flash.img")
	w, err := flash.OpenFile(path, 8192, flash.WithWriteSize(16))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Program(16, pattern(32)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := flash.OpenFileReadOnly(path, flash.WithWriteSize(16))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != 8192 || r.EraseSize() != 4096 || r.WriteSize() != 16 {
		t.Errorf("geometry %d/%d/%d, want 8192/4096/16", r.Size(), r.EraseSize(), r.WriteSize())
	}
	got := make([]byte, 32)
	if _, err := r.ReadAt(got, 16); err != nil || !bytes.Equal(got, pattern(32)) {
		t.Errorf("ReadAt = %x, %v", got, err)
	}
	if err := r.Program(4096, pattern(16)); !errors.Is(err, flash.ErrReadOnly) {
		t.Errorf("Program: err = %v, want ErrReadOnly", err)
	}
	if err := r.Erase(0, 4096); !errors.Is(err, flash.ErrReadOnly) {
		t.Errorf("Erase: err = %v, want ErrReadOnly", err)
	}
	if r.Ops() != 0 {
		t.Errorf("Ops = %d, want 0", r.Ops())
	}

	if _, err := flash.OpenFileReadOnly(path, flash.WithEraseSize(3*1024)); !errors.Is(err, flash.ErrGeometry) {
		t.Errorf("read-only open with a mismatched erase size: err = %v, want ErrGeometry", err)
	}
	if _, err := flash.OpenFileReadOnly(path + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing file: err = %v, want fs.ErrNotExist", err)
	}
}

func TestFileClosed(t *testing.T) {
	f, err := flash.OpenFile(filepath.Join(t.TempDir(), "flash.img"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, rerr := f.ReadAt(make([]byte, 8), 0)
	for name, err := range map[string]error{
		"ReadAt":  rerr,
		"Program": f.Program(0, pattern(8)),
		"Erase":   f.Erase(0, 4096),
		"Close":   f.Close(),
	} {
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want fs.ErrClosed", name, err)
		}
	}
}

func TestFileSync(t *testing.T) {
	f := newFile(t, 8192, flash.WithSync(true), flash.WithWriteSize(1))
	if err := f.Program(1, []byte{0x42}); err != nil {
		t.Fatal(err)
	}
	if err := f.Erase(0, 8192); err != nil {
		t.Fatal(err)
	}
	if !isErased(contents(t, f)) {
		t.Error("not erased")
	}
}

// TestSimAndFileAgree runs the same random operations against both devices
// and expects the same outcomes and contents.
func TestSimAndFileAgree(t *testing.T) {
	seed := testSeed(t)
	for _, g := range geometries {
		t.Run(fmt.Sprintf("erase=%d/write=%d", g.erase, g.write), func(t *testing.T) {
			opts := []flash.Option{flash.WithEraseSize(g.erase), flash.WithWriteSize(g.write)}
			size := 4 * int64(g.erase)
			devs := []counted{newSim(t, size, opts...), newFile(t, size, opts...)}
			r := rand.New(rand.NewPCG(uint64(seed), uint64(g.erase*g.write)))
			for i := range 500 {
				var errs [2]error
				if r.IntN(4) == 0 {
					off := int64(r.IntN(5)) * int64(g.erase)
					n := int64(r.IntN(3)) * int64(g.erase)
					for j, d := range devs {
						errs[j] = d.Erase(off, n)
					}
				} else {
					off := int64(r.IntN(int(size)/g.write+2)) * int64(g.write)
					p := randomBytes(r, g.write*(1+r.IntN(4)))
					for j, d := range devs {
						errs[j] = d.Program(off, p)
					}
				}
				if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
					t.Fatalf("operation %d: sim %v, file %v", i, errs[0], errs[1])
				}
			}
			if !bytes.Equal(contents(t, devs[0]), contents(t, devs[1])) {
				t.Error("contents differ")
			}
			if devs[0].Stats() != devs[1].Stats() || fmt.Sprint(devs[0].EraseCounts()) != fmt.Sprint(devs[1].EraseCounts()) {
				t.Errorf("counters differ: %+v %v, %+v %v",
					devs[0].Stats(), devs[0].EraseCounts(), devs[1].Stats(), devs[1].EraseCounts())
			}
		})
	}
}
