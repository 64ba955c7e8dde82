package simmodel_test

import (
	"errors"
	"fmt"
	"strings"

	"edgeota/nodeagent/simmodel"
)

func Example() {
	image := "edgeota-sim-model error_permille=1000 p50_us=9000 p99_us=30000 ram_bytes=180000\n<weights>"
	m, err := simmodel.Runtime{Seed: 1}.Load(strings.NewReader(image), int64(len(image)))
	if err != nil {
		fmt.Println(err)
		return
	}
	b := m.Behaviour()
	fmt.Printf("p50 %dus, p99 %dus, RAM %d bytes, CPU %d‰\n", b.P50Micros, b.P99Micros, m.RAMBytes(), m.CPUPermille())
	if _, err := m.Infer(); errors.Is(err, simmodel.ErrInference) {
		fmt.Println(err)
	}

	crash := "edgeota-sim-model crash_on_boot=1\n"
	_, err = simmodel.Runtime{}.Load(strings.NewReader(crash), int64(len(crash)))
	fmt.Println(errors.Is(err, simmodel.ErrCrashOnBoot))
	// Output:
	// p50 9000us, p99 30000us, RAM 180000 bytes, CPU 300‰
	// simmodel: inference failed
	// true
}

func ExampleParseHeader() {
	b, isSim, err := simmodel.ParseHeader([]byte("edgeota-sim-model p99_us=50000 crash_on_boot=0"))
	fmt.Println(isSim, err, b.P50Micros, b.P99Micros)

	_, isSim, err = simmodel.ParseHeader([]byte("edgeota-sim-model speed=11"))
	fmt.Println(isSim, err)

	b, isSim, err = simmodel.ParseHeader([]byte("\x7fELF"))
	fmt.Println(isSim, err, b == simmodel.Healthy())
	// Output:
	// true <nil> 8000 50000
	// true simmodel: bad header: unknown key "speed"
	// false <nil> true
}
