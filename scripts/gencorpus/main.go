// Command gencorpus writes the delta corpus of docs/deltas.md: for each
// pair, the base and target images, the format-1 delta between them, and a
// line of sizes. The pairs are deterministic from the seed.
//
//	go run ./scripts/gencorpus [-seed 15] [-out testdata/deltas]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"edgeota/protocol/delta"
	"edgeota/protocol/delta/corpus"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gencorpus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 15, "corpus seed (docs/deltas.md quotes seed 15)")
	out := fs.String("out", filepath.Join("testdata", "deltas"), "directory to write the pairs to")
	large := fs.Bool("large", false, "also write the two 1 MiB pairs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "gencorpus:", err)
		return 1
	}
	pairs := corpus.Pairs(*seed)
	if *large {
		head, unrelated := corpus.Large(*seed)
		pairs = append(pairs, head, unrelated)
	}
	fmt.Fprintf(stdout, "%-16s %9s %9s %9s %7s\n", "pair", "base B", "target B", "delta B", "ratio")
	for _, p := range pairs {
		d, err := delta.Diff(p.Base, p.Target)
		if err != nil {
			fmt.Fprintf(stderr, "gencorpus: %s: %v\n", p.Name, err)
			return 1
		}
		for suffix, b := range map[string][]byte{".base": p.Base, ".target": p.Target, ".delta": d} {
			if err := os.WriteFile(filepath.Join(*out, p.Name+suffix), b, 0o644); err != nil {
				fmt.Fprintln(stderr, "gencorpus:", err)
				return 1
			}
		}
		fmt.Fprintf(stdout, "%-16s %9d %9d %9d %6.1f%%\n", p.Name, len(p.Base), len(p.Target), len(d),
			100*float64(len(d))/float64(len(p.Target)))
	}
	return 0
}
