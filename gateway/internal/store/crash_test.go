package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The crash test runs PutModel in a child process (this test binary again,
// running only TestCrashChild) and kills it with SIGKILL at chosen moments,
// then opens the file and checks that no partial model is visible and that
// nothing is left in staging.

const crashEnv = "EDGEOTA_STORE_CRASH_CHILD" // "path,image seed,size,mode"

var crashSeed = flag.Uint64("crashseed", 0, "seed of TestPutModelCrash's kill delays (0: from the clock)")

const (
	crashImageSize  = 1<<20 + 100 // 17 staging transactions of 64 KiB
	crashChunkSize  = 4096
	crashStageBytes = 64 << 10
)

// TestCrashChild is the child process of TestPutModelCrash: it puts one
// image into the store named by crashEnv. In mode "step" it asks the parent
// before every read of the image ("read N" on stdout, one byte back on
// stdin), so the parent can kill it between two staging transactions; in
// mode "free" it runs straight through. It prints "done <err>" and waits to
// be killed.
func TestCrashChild(t *testing.T) {
	cfg := os.Getenv(crashEnv)
	if cfg == "" {
		t.Skip("child process of TestPutModelCrash")
	}
	f := strings.Split(cfg, ",")
	seed, _ := strconv.ParseUint(f[1], 10, 64)
	size, _ := strconv.Atoi(f[2])
	db, err := Open(f[0], WithChunkSize(crashChunkSize))
	if err != nil {
		fmt.Println("open", err)
		return
	}
	db.stageBytes = crashStageBytes
	image := randomImage(rand.New(rand.NewPCG(seed, 0)), size)
	k := testKeys(t, 1)
	var r io.Reader = bytes.NewReader(image)
	if f[3] == "step" {
		r = &steppedReader{r: r}
	}
	fmt.Println("start")
	_, err = db.PutModel(k.sign(t, manifestFor(image, 1)), r, k.trust)
	fmt.Println("done", err)
	io.Copy(io.Discard, os.Stdin) // until killed
}

// steppedReader announces every read on stdout and waits for a byte on
// stdin before doing it.
type steppedReader struct {
	r   io.Reader
	off int
}

func (s *steppedReader) Read(p []byte) (int, error) {
	fmt.Printf("read %d\n", s.off)
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		return 0, err
	}
	n, err := s.r.Read(p)
	s.off += n
	return n, err
}

// crashRun is one child process.
type crashRun struct {
	killAtRead int           // mode step: kill when the child announces this read (-1: never)
	killAfter  time.Duration // mode free: kill this long after "start" (<0: never)
}

// crashOutcome is what the parent saw before the kill.
type crashOutcome struct {
	reads int           // reads acknowledged
	done  bool          // the child printed "done"
	err   string        // its PutModel error, "<nil>" on success
	put   time.Duration // from "start" to "done"
}

func runCrashChild(t *testing.T, path string, seed uint64, run crashRun) crashOutcome {
	t.Helper()
	mode := "free"
	if run.killAtRead >= 0 {
		mode = "step"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d,%s", crashEnv, path, seed, crashImageSize, mode))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() { cmd.Process.Kill() } // SIGKILL
	var out crashOutcome
	var start time.Time
	sc := bufio.NewScanner(stdout)
scan:
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "start":
			start = time.Now()
			if run.killAtRead < 0 && run.killAfter >= 0 {
				time.AfterFunc(run.killAfter, kill)
			}
		case strings.HasPrefix(line, "read "):
			if out.reads == run.killAtRead {
				break scan
			}
			out.reads++
			if _, err := stdin.Write([]byte{1}); err != nil {
				break scan
			}
		case strings.HasPrefix(line, "done "):
			out.done, out.err, out.put = true, strings.TrimPrefix(line, "done "), time.Since(start)
			break scan
		case strings.HasPrefix(line, "open "):
			t.Errorf("child: %s", line)
			break scan
		}
	}
	kill()
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	return out
}

// checkAfterCrash opens the store the child was killed in and checks it:
// invariants, the model put before intact, the child's model whole or
// absent (present if the child said its put succeeded).
func checkAfterCrash(t *testing.T, path string, before *Model, beforeImage []byte, seed uint64, out crashOutcome) (present bool, staged int) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("open after the kill: %v", err)
	}
	bdb.View(func(tx *bolt.Tx) error {
		names, _ := bucketNames(tx.Bucket(bucketStaging))
		staged = len(names)
		return nil
	})
	bdb.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatalf("open after the kill: %v", err)
	}
	defer db.Close()
	checkInvariants(t, db)
	if got := readAll(t, db, before.Digest, before.Size, 1024); !bytes.Equal(got, beforeImage) {
		t.Error("the model stored before the crash changed")
	}
	image := randomImage(rand.New(rand.NewPCG(seed, 0)), crashImageSize)
	m, err := db.Model(manifestFor(image, 1).Digest)
	switch {
	case errors.Is(err, ErrNotFound):
		if out.done && out.err == "<nil>" {
			t.Error("the put returned success but the model is gone")
		}
		if models, images, staging := bucketCounts(t, db); models != 1 || images != 1 || staging != 0 {
			t.Errorf("%d models, %d images, %d staging buckets; want 1, 1, 0", models, images, staging)
		}
		return false, staged
	case err != nil:
		t.Fatal(err)
	}
	if got := readAll(t, db, m.Digest, m.Size, 1000); !bytes.Equal(got, image) {
		t.Error("the model put by the child is visible but differs from its image")
	}
	return true, staged
}

func TestPutModelCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	k := testKeys(t, 1)
	// newFile makes a store holding one model and returns it.
	newFile := func(t *testing.T) (string, *Model, []byte) {
		path := filepath.Join(t.TempDir(), "gateway.db")
		db, err := Open(path, WithChunkSize(crashChunkSize))
		if err != nil {
			t.Fatal(err)
		}
		image := randomImage(rand.New(rand.NewPCG(99, 99)), 100_000)
		m := putImage(t, db, k, image, 1)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return path, m, image
	}

	// Killed between two staging transactions, at the first read, after a
	// few, and when the whole image was read.
	reads := crashImageSize/crashStageBytes + 1
	for _, at := range []int{0, 1, 2, reads / 2, reads - 1, reads, reads + 1} {
		t.Run(fmt.Sprintf("at read %d", at), func(t *testing.T) {
			path, before, beforeImage := newFile(t)
			out := runCrashChild(t, path, uint64(at)+1, crashRun{killAtRead: at})
			present, staged := checkAfterCrash(t, path, before, beforeImage, uint64(at)+1, out)
			if at < reads && present {
				t.Errorf("killed before the image was read whole, but the model is present")
			}
			if at > 0 && at < reads && staged != 1 {
				t.Errorf("killed after %d staging transactions, but %d staging buckets were left to clean", at, staged)
			}
			t.Logf("reads %d, done %v %s, model present %v, staging buckets cleaned %d", out.reads, out.done, out.err, present, staged)
		})
	}

	// Killed at random moments, which also hit commits and the final
	// transaction. The delays span a whole put, measured first.
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("kill delays from seed %d (rerun with -crashseed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path, before, beforeImage := newFile(t)
	out := runCrashChild(t, path, 1000, crashRun{killAtRead: -1, killAfter: -1})
	full := out.put
	if !out.done || out.err != "<nil>" {
		t.Fatalf("uninterrupted put: %+v", out)
	}
	checkAfterCrash(t, path, before, beforeImage, 1000, out)
	var present, absent, staged int
	for i := range 20 {
		path, before, beforeImage := newFile(t)
		delay := time.Duration(rng.Int64N(int64(full) * 11 / 10))
		out := runCrashChild(t, path, uint64(i), crashRun{killAtRead: -1, killAfter: delay})
		p, s := checkAfterCrash(t, path, before, beforeImage, uint64(i), out)
		if p {
			present++
		} else {
			absent++
		}
		staged += s
	}
	t.Logf("a whole put takes %v; random kills: model present %d times, absent %d times, %d staging buckets cleaned",
		full, present, absent, staged)
}
