package cohort_test

import (
	"errors"
	"fmt"

	"edgeota/protocol/cohort"
)

func ExampleParse() {
	e, err := cohort.Parse("region:us-east AND NOT stage:canary* OR (site:plant-1)")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e)
	for _, node := range []map[string]string{
		{"region": "us-east", "stage": "prod"},
		{"region": "us-east", "stage": "canary-2"},
		{"region": "eu-west", "site": "plant-1"},
		{"region": "eu-west"},
	} {
		fmt.Println(node, e.Match(node))
	}

	_, err = cohort.Parse("region:us-east AND")
	var se *cohort.SyntaxError
	fmt.Println(err, errors.As(err, &se), se.Pos)
	// Output:
	// region:us-east AND NOT stage:canary* OR site:plant-1
	// map[region:us-east stage:prod] true
	// map[region:us-east stage:canary-2] false
	// map[region:eu-west site:plant-1] true
	// map[region:eu-west] false
	// cohort: at column 19: expected term after AND true 18
}
