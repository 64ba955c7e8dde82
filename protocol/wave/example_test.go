package wave_test

import (
	"fmt"

	"edgeota/protocol/wave"
)

func ExamplePlan() {
	nodes := []string{"n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "n09", "n10"}
	// waves: [{percent: 1}, {percent: 25}, {percent: 100}]
	plan, err := wave.Plan("fw-2.4.1", nodes, []uint32{100, 2500, 10000})
	if err != nil {
		fmt.Println(err)
		return
	}
	for k, w := range plan {
		fmt.Printf("wave %d: %v\n", k, w)
	}
	k, _ := wave.WaveOf("fw-2.4.1", "n07", nodes, []uint32{100, 2500, 10000})
	fmt.Println("n07 is in wave", k)

	_, err = wave.Plan("fw-2.4.1", nodes, []uint32{100, 5000})
	fmt.Println(err)
	// Output:
	// wave 0: [n04]
	// wave 1: [n07 n08]
	// wave 2: [n01 n05 n03 n09 n06 n10 n02]
	// n07 is in wave 1
	// wave: invalid waves: last wave at 5000 basis points, want 10000
}

func ExampleTarget() {
	fmt.Println(wave.Target(100, 10))   // 1 % of 10: at least one node
	fmt.Println(wave.Target(2500, 10))  // 25 % of 10: ceil(2.5)
	fmt.Println(wave.Target(10000, 10)) // everyone
	fmt.Println(wave.Target(5000, 0))   // an empty cohort targets nobody
	// Output:
	// 1
	// 3
	// 10
	// 0
}
