// Package decimal parses the fixed-point numbers of the contract's
// authoring forms (docs/protocol.md section 7: a wave's percent with at most 2
// decimals, a rate or a factor with at most 3) exactly, from their text,
// never through floating point: "0.29" with 2 places is 29.
package decimal

import (
	"errors"
	"strconv"
	"strings"
)

// Errors of Parse.
var (
	// ErrPlaces: more decimals than allowed.
	ErrPlaces = errors.New("too many decimals")
	// ErrSyntax: not a non-negative decimal number.
	ErrSyntax = errors.New("not a non-negative decimal number")
)

// Parse parses a non-negative decimal with at most places decimals (0 to
// 9) and returns it scaled by 10^places. The whole part must fit 32 bits.
func Parse(s string, places int) (uint64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > places {
		return 0, ErrPlaces
	}
	if whole == "" || whole[0] == '+' || whole[0] == '-' {
		return 0, ErrSyntax
	}
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil {
		return 0, ErrSyntax
	}
	frac += strings.Repeat("0", places-len(frac))
	var f uint64
	if places > 0 {
		if f, err = strconv.ParseUint(frac, 10, 32); err != nil {
			return 0, ErrSyntax
		}
	}
	scale := uint64(1)
	for range places {
		scale *= 10
	}
	return w*scale + f, nil
}
