package outbox

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The crash test runs appenders and a publisher in a child process (this
// test binary again, running only TestCrashChild), kills it with SIGKILL at
// a random moment, reopens the file and checks that every append whose
// done said durable is there, in order and intact, and that nothing else
// is. The rounds share one file, so each also checks what the earlier
// rounds left, and that sequence numbers keep increasing across restarts.

const crashEnv = "EDGEOTA_OUTBOX_CRASH_CHILD" // "path,round"

var crashSeed = flag.Uint64("crashseed", 0, "seed of TestCrash's kill delays (0: from the clock)")

const (
	crashWriters  = 8 // appender goroutines; even ones append health reports, odd ones status events
	crashMaxDelay = 300 * time.Millisecond
)

// crashNode is the node id of appender w in round r.
func crashNode(r, w int) string { return fmt.Sprintf("r%d-w%d", r, w) }

// crashPayload is item i of appender w in round r: its name, then a
// pattern of a length that varies with i.
func crashPayload(r, w, i int) []byte {
	b := fmt.Appendf(nil, "r%d/w%d/i%d/", r, w, i)
	return append(b, bytes.Repeat([]byte{byte('a' + i%26)}, (i*37)%150)...)
}

// TestCrashChild is the child process of TestCrash. It opens the outbox,
// prints "start", and then until it is killed: appender w appends items
// 0, 1, 2... of its node, waiting for each done, and prints "ack w i" once
// done said nil; a publisher peeks health reports and acks those of this
// round, printing "dels w i" (the highest item of w in the batch) before
// the Ack and "deld w i" after it returned.
func TestCrashChild(t *testing.T) {
	cfg := os.Getenv(crashEnv)
	if cfg == "" {
		t.Skip("child process of TestCrash")
	}
	f := strings.Split(cfg, ",")
	round, _ := strconv.Atoi(f[1])
	o, err := Open(Config{Path: f[0]})
	if err != nil {
		fmt.Println("open", err)
		return
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Printf(format+"\n", args...)
		outMu.Unlock()
	}
	say("start")
	appended := make(chan struct{}, 1)
	for w := range crashWriters {
		go func() {
			for i := 0; ; i++ {
				ch := make(chan error, 1)
				err := o.Append(Kind(w%2), crashNode(round, w), crashPayload(round, w, i), func(err error) { ch <- err })
				if err == nil {
					err = <-ch
				}
				if err != nil {
					say("error %v", err)
					return
				}
				say("ack %d %d", w, i)
				select {
				case appended <- struct{}{}:
				default:
				}
			}
		}()
	}
	prefix := fmt.Sprintf("r%d-", round)
	for range appended {
		items, err := o.Peek(KindHealth, 32)
		if err != nil {
			say("error %v", err)
			return
		}
		var mine []Item
		top := map[int]int{}
		for _, it := range items {
			if strings.HasPrefix(it.Node, prefix) {
				var r, w, i int
				fmt.Sscanf(string(it.Data), "r%d/w%d/i%d/", &r, &w, &i)
				top[w] = max(top[w], i)
				mine = append(mine, it)
			}
		}
		if len(mine) == 0 {
			continue
		}
		for w, i := range top {
			say("dels %d %d", w, i)
		}
		if err := o.Ack(mine); err != nil {
			say("error %v", err)
			return
		}
		for w, i := range top {
			say("deld %d %d", w, i)
		}
	}
}

// crashSeen is what the parent learnt from one child's output: per
// appender, the last item acknowledged, the highest item the publisher
// was about to delete and the highest it had deleted (-1: none).
type crashSeen struct {
	ack, dels, deld [crashWriters]int
	lines           int
}

// runCrashChild runs TestCrashChild on path as round and kills it (SIGKILL)
// delay after it started, or with afterAck delay after its first
// acknowledged append, and returns what it said.
func runCrashChild(t *testing.T, path string, round int, delay time.Duration, afterAck bool) crashSeen {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", crashEnv, path, round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen crashSeen
	for w := range crashWriters {
		seen.ack[w], seen.dels[w], seen.deld[w] = -1, -1, -1
	}
	armed := false
	arm := func() {
		if !armed {
			armed = true
			time.AfterFunc(delay, func() { cmd.Process.Kill() }) // SIGKILL
		}
	}
	// Every line the child printed before it died is read, including those
	// still in the pipe after the kill.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		var w, i int
		switch {
		case line == "start" && !afterAck:
			arm()
		case line == "start":
		case strings.HasPrefix(line, "open "), strings.HasPrefix(line, "error "):
			t.Errorf("child: %s", line)
			cmd.Process.Kill()
		default:
			var what string
			if _, err := fmt.Sscanf(line, "%s %d %d", &what, &w, &i); err != nil {
				t.Fatalf("child said %q", line)
			}
			seen.lines++
			switch what {
			case "ack":
				seen.ack[w] = i
				if afterAck {
					arm()
				}
			case "dels":
				seen.dels[w] = max(seen.dels[w], i)
			case "deld":
				seen.deld[w] = max(seen.deld[w], i)
			}
		}
	}
	cmd.Wait()
	return seen
}

// crashRun is what one appender's items look like in the file: the run of
// item numbers first..last (empty when first > last), and their seqs.
type crashRun struct {
	first, last int
	seqs        []uint64
}

// checkAfterCrash checks the file as the kill left it, opens it and
// returns, per node, the run of its items, after checking each node's items
// are consecutive and intact.
func checkAfterCrash(t *testing.T, path string) map[string]crashRun {
	t.Helper()
	checkFile(t, path)
	o, err := Open(Config{Path: path})
	if err != nil {
		t.Fatalf("open after the kill: %v", err)
	}
	defer o.Close()
	checkAccounting(t, o)
	if st := o.Stats(); st.Corrupt != 0 {
		t.Errorf("%d corrupted items after the kill", st.Corrupt)
	}
	runs := map[string]crashRun{}
	for k := range Kind(numKinds) {
		for _, it := range peekAll(t, o, k) {
			var r, w int
			if _, err := fmt.Sscanf(it.Node, "r%d-w%d", &r, &w); err != nil || Kind(w%2) != k {
				t.Fatalf("%s item %d from node %q", k, it.Seq, it.Node)
			}
			run, ok := runs[it.Node]
			i := run.last + 1
			if !ok {
				fmt.Sscanf(string(it.Data), "r%d/w%d/i%d/", &r, &w, &i)
				run.first = i
			}
			if want := crashPayload(r, w, i); !bytes.Equal(it.Data, want) {
				t.Fatalf("%s item %d of %s: %q, want item %d %q", k, it.Seq, it.Node, it.Data, i, want)
			}
			run.last = i
			run.seqs = append(run.seqs, it.Seq)
			runs[it.Node] = run
		}
	}
	return runs
}

func TestCrash(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("kill delays from seed %d (rerun with -crashseed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "outbox.db")
	before := map[string]crashRun{} // what earlier rounds left
	var maxSeq uint64
	var acked, deleted int
	for round := range rounds {
		delay := time.Duration(rng.Int64N(int64(crashMaxDelay)))
		// Round 0 counts its delay from the first acknowledged append, so
		// every run acknowledges some: the check at the end, and the
		// later rounds' checks of what earlier ones left, always have
		// items. Counted from the start, every delay of a run can fall
		// before the first append's fsync, a chance of (d/300ms)^rounds
		// for a first fsync d after the start: about 1 ms on an idle
		// machine, but with d = 60 ms on a loaded one, 0.2^3 = 8e-3 for
		// the 3 rounds of -short.
		seen := runCrashChild(t, path, round, delay, round == 0)
		runs := checkAfterCrash(t, path)
		if t.Failed() {
			t.FailNow()
		}
		for node, want := range before {
			if got := runs[node]; got.first != want.first || got.last != want.last || len(got.seqs) != len(want.seqs) {
				t.Errorf("round %d changed %s from items %d..%d to %d..%d", round, node, want.first, want.last, got.first, got.last)
			}
		}
		var roundMax uint64
		for w := range crashWriters {
			node := crashNode(round, w)
			run, ok := runs[node]
			ack, dels, deld := seen.ack[w], seen.dels[w], seen.deld[w]
			// The publisher deletes a prefix of each node's items, at most
			// up to dels and at least up to deld; appends are consecutive.
			switch {
			case !ok && ack > dels:
				t.Errorf("round %d %s: no item in the file, but %d was acknowledged and at most %d deleted", round, node, ack, dels)
			case !ok:
			case run.last < ack:
				t.Errorf("round %d %s: items %d..%d in the file, but %d was acknowledged", round, node, run.first, run.last, ack)
			case run.last > ack+1:
				t.Errorf("round %d %s: item %d in the file, but only %d was appended", round, node, run.last, ack+1)
			case run.first <= deld:
				t.Errorf("round %d %s: item %d in the file, but %d was deleted", round, node, run.first, deld)
			case run.first > dels+1:
				t.Errorf("round %d %s: items from %d in the file, but only up to %d could be deleted", round, node, run.first, dels)
			}
			if ok {
				if run.seqs[0] <= maxSeq {
					t.Errorf("round %d %s: seq %d after seq %d of an earlier round", round, node, run.seqs[0], maxSeq)
				}
				roundMax = max(roundMax, run.seqs[len(run.seqs)-1])
				before[node] = run
			}
			acked += ack + 1
			deleted += deld + 1
		}
		maxSeq = max(maxSeq, roundMax)
		from := "start"
		if round == 0 {
			from = "the first acknowledgment"
		}
		t.Logf("round %d: killed %v after %s; %d lines; acknowledged %v", round, delay.Round(time.Millisecond), from, seen.lines, seen.ack)
	}
	t.Logf("%d appends acknowledged, at least %d acked by the publisher", acked, deleted)
	if acked == 0 {
		t.Error("no append was acknowledged in any round: the test checked nothing")
	}
}
