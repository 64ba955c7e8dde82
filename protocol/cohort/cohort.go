package cohort

import (
	"errors"
	"fmt"
)

// Limits on a cohort expression (docs/protocol.md section 7). [Parse] refuses input beyond
// them with a [*SyntaxError].
const (
	// MaxLen is the longest expression, in bytes, both as written and in its
	// canonical form ([Expr.String]).
	MaxLen = 1024
	// MaxDepth is the deepest nesting of parentheses.
	MaxDepth = 32
	// MaxTerms is the largest number of label:value terms in one expression.
	MaxTerms = 128
)

// ErrSyntax is wrapped by every error [Parse] returns: test for it with errors.Is,
// and use errors.As with a [*SyntaxError] for the position.
var ErrSyntax = errors.New("cohort: syntax error")

// SyntaxError describes why and where an expression failed to parse.
type SyntaxError struct {
	// Pos is the 0-based byte offset in the expression of the offending token or
	// byte; it equals the length of the expression when the input ended too early.
	// The message shows it as a 1-based column (Pos+1).
	Pos int
	// Msg says what was expected or what was wrong, without position or prefix.
	Msg string
}

// Error returns the message with its 1-based column, for example
// "cohort: at column 14: expected term after AND".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("cohort: at column %d: %s", e.Pos+1, e.Msg)
}

// Unwrap returns [ErrSyntax], so that errors.Is(err, ErrSyntax) holds.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Expr is a parsed cohort expression. It is immutable and safe for concurrent use.
//
// Create one with [Parse] or [MustParse]. The zero Expr (and a nil *Expr) matches no
// node and has an empty String.
type Expr struct {
	root  *node  // syntax tree, kept for String and tests
	prog  []inst // compiled form evaluated by Match
	start int32  // entry point into prog, or accept for "*"
	canon string // canonical text, computed once by Parse
}

// Match reports whether a node with the given labels belongs to the cohort. A nil
// or empty labels map is a node without labels. Match does not allocate.
func (e *Expr) Match(labels map[string]string) bool {
	if e == nil {
		return false
	}
	prog := e.prog
	pc := e.start
	// Every jump goes forward (see compile), so the loop runs at most len(prog)
	// times; a negative pc is a verdict.
	for uint(pc) < uint(len(prog)) {
		in := &prog[pc]
		v, ok := labels[in.key]
		switch in.op {
		case opEqual:
			ok = ok && v == in.val
		case opPrefix:
			ok = ok && len(v) >= len(in.val) && v[:len(in.val)] == in.val
		}
		if ok {
			pc = in.onTrue
		} else {
			pc = in.onFalse
		}
	}
	return pc == accept
}

// String returns the canonical form of the expression: terms as written, single
// spaces between tokens, and parentheses only where precedence needs them, so
// "(a:1) AND ((b:2 AND c:3))" becomes "a:1 AND b:2 AND c:3". Parsing the result
// gives an equivalent Expr with the same String.
func (e *Expr) String() string {
	if e == nil {
		return ""
	}
	return e.canon
}

// MustParse is like [Parse] but panics if the expression does not parse. It is for
// expressions fixed in source code, such as tests and defaults.
func MustParse(expr string) *Expr {
	e, err := Parse(expr)
	if err != nil {
		panic(fmt.Sprintf("cohort: MustParse(%q): %v", expr, err))
	}
	return e
}
