package journal_test

import (
	"errors"
	"fmt"
	"log"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent/internal/journal"
)

// The agent appends its state after every transition; a power cut in the
// middle of an append leaves the previous state, never garbage.
func Example() {
	dev, err := flash.New(4*4096, flash.WithEraseSize(4096), flash.WithWriteSize(8))
	if err != nil {
		log.Fatal(err)
	}
	j, err := journal.Open(dev, 0, 4)
	if err != nil {
		log.Fatal(err)
	}
	for _, state := range []string{"active=a", "active=a pending=b"} {
		if err := j.Append([]byte(state)); err != nil {
			log.Fatal(err)
		}
	}

	// Power fails while the first copy of the next record is written.
	dev.CutPowerAt(1, flash.CutMidway)
	err = j.Append([]byte("active=b trial=1"))
	fmt.Println(errors.Is(err, flash.ErrPowerCut))

	// Reboot.
	dev.PowerOn()
	j, err = journal.Open(dev, 0, 4)
	if err != nil {
		log.Fatal(err)
	}
	state, seq, ok := j.Latest()
	fmt.Printf("%s (seq %d, %v)\n", state, seq, ok)

	if err := j.Append([]byte("active=b trial=1")); err != nil {
		log.Fatal(err)
	}
	state, seq, _ = j.Latest()
	fmt.Printf("%s (seq %d)\n", state, seq)
	// Output:
	// true
	// active=a pending=b (seq 2, true)
	// active=b trial=1 (seq 3)
}
