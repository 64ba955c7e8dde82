package flash_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"edgeota/firmware-sim/flash"
)

func Example() {
	dev, err := flash.New(64<<10, flash.WithEraseSize(4096), flash.WithWriteSize(8))
	if err != nil {
		log.Fatal(err)
	}

	// Write units are programmed once between erases.
	if err := dev.Program(0, []byte("edgeota!")); err != nil {
		log.Fatal(err)
	}
	err = dev.Program(0, []byte("EDGEOTA!"))
	fmt.Println(err)

	// Cut power before the next operation, then reboot.
	dev.CutPowerAt(1, flash.CutBefore)
	err = dev.Erase(0, 4096)
	fmt.Println(errors.Is(err, flash.ErrPowerCut))
	dev.PowerOn()

	buf := make([]byte, 8)
	if _, err := dev.ReadAt(buf, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s ops=%d block0 erases=%d\n", buf, dev.Ops(), dev.EraseCount(0))
	// Output:
	// flash: program 8 bytes at 0x0: write unit not erased at 0x0
	// true
	// edgeota! ops=2 block0 erases=0
}

// A power-cut sweep runs a scenario on a fresh clone for every operation it
// performs, cutting power at that operation, until the scenario completes.
func ExampleSim_Clone() {
	base, err := flash.New(8192, flash.WithSeed(42))
	if err != nil {
		log.Fatal(err)
	}
	update := func(dev *flash.Sim) error {
		if err := dev.Erase(4096, 4096); err != nil {
			return err
		}
		if err := dev.Program(4096, make([]byte, 64)); err != nil {
			return err
		}
		return dev.Program(0, []byte("commit!!"))
	}
	for n := uint64(1); ; n++ {
		dev := base.Clone()
		dev.CutPowerAt(n, flash.CutMidway)
		if err := update(dev); err == nil {
			fmt.Printf("completed with %d operations\n", dev.Ops())
			break
		}
		dev.PowerOn()
		// Here the recovery code would run and its invariants be checked.
		fmt.Printf("cut at operation %d\n", n)
	}
	// Output:
	// cut at operation 1
	// cut at operation 2
	// cut at operation 3
	// completed with 3 operations
}

func ExampleOpenFile() {
	dir, err := os.MkdirTemp("", "flash")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "node.img")

	dev, err := flash.OpenFile(path, 64<<10, flash.WithWriteSize(16))
	if err != nil {
		log.Fatal(err)
	}
	if err := dev.Program(0, []byte("slot A header...")); err != nil {
		log.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		log.Fatal(err)
	}

	ro, err := flash.OpenFileReadOnly(path, flash.WithWriteSize(16))
	if err != nil {
		log.Fatal(err)
	}
	defer ro.Close()
	buf := make([]byte, 16)
	if _, err := ro.ReadAt(buf, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q %v\n", buf, errors.Is(ro.Erase(0, 4096), flash.ErrReadOnly))
	// Output:
	// "slot A header..." true
}
