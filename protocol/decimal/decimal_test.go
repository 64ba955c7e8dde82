package decimal

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in     string
		places int
		want   uint64
		err    error
	}{
		{"0.29", 2, 29, nil},
		{"1", 2, 100, nil},
		{"100", 2, 10000, nil},
		{"99.99", 2, 9999, nil},
		{"0.025", 3, 25, nil},
		{"1.2", 3, 1200, nil},
		{"7", 0, 7, nil},
		{"0.295", 2, 0, ErrPlaces},
		{"1.", 2, 100, nil},
		{"", 2, 0, ErrSyntax},
		{".5", 2, 0, ErrSyntax},
		{"-1", 2, 0, ErrSyntax},
		{"+1", 2, 0, ErrSyntax},
		{"1.-5", 3, 0, ErrSyntax},
		{"1e2", 2, 0, ErrSyntax},
		{"abc", 2, 0, ErrSyntax},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.places)
		if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
			t.Errorf("Parse(%q, %d) = %d, %v; want %d, %v", tt.in, tt.places, got, err, tt.want, tt.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("0.29", 2)
	f.Add("100", 3)
	f.Fuzz(func(t *testing.T, s string, places int) {
		if places < 0 || places > 9 {
			return
		}
		Parse(s, places) // must not panic
	})
}
