package cohort

import (
	"errors"
	"strings"
	"testing"
)

// labels is shorthand for a node's label set in the tables below.
type labels = map[string]string

// node6 is a typical node: six labels, used by the benchmark and allocation test.
var node6 = labels{
	"region": "us-east",
	"hw":     "rev2",
	"stage":  "prod",
	"site":   "plant-2",
	"line":   "1",
	"model":  "vision-s",
}

// expr5 is the five-term expression of the benchmark.
const expr5 = "region:us-east AND hw:rev2 AND NOT stage:canary* OR (site:plant-1 AND line:3)"

var validTests = []struct {
	name    string
	expr    string
	canon   string
	match   []labels
	noMatch []labels
}{
	{
		name: "star selects every node", expr: "*", canon: "*",
		match: []labels{nil, {}, node6},
	},
	{
		name: "star with surrounding whitespace", expr: " \t*\r\n", canon: "*",
		match: []labels{nil, node6},
	},
	{
		name: "exact term", expr: "region:us-east", canon: "region:us-east",
		match:   []labels{{"region": "us-east"}, node6},
		noMatch: []labels{nil, {"region": "us-east-1"}, {"region": "us"}, {"hw": "us-east"}},
	},
	{
		name: "value is case-sensitive", expr: "hw:Rev2", canon: "hw:Rev2",
		match:   []labels{{"hw": "Rev2"}},
		noMatch: []labels{{"hw": "rev2"}},
	},
	{
		name: "prefix term", expr: "stage:canary*", canon: "stage:canary*",
		match:   []labels{{"stage": "canary"}, {"stage": "canary-2"}},
		noMatch: []labels{{"stage": "canar"}, {"stage": "prod"}, {"stage": "Canary"}, nil},
	},
	{
		name: "presence term", expr: "stage:*", canon: "stage:*",
		match:   []labels{{"stage": "prod"}, {"stage": ""}},
		noMatch: []labels{nil, {"region": "stage"}},
	},
	{
		name: "split at first colon", expr: "site:plant:1", canon: "site:plant:1",
		match:   []labels{{"site": "plant:1"}},
		noMatch: []labels{{"site": "plant"}, {"site:plant": "1"}},
	},
	{
		name: "every value byte", expr: "k:AZaz09_.:/-", canon: "k:AZaz09_.:/-",
		match: []labels{{"k": "AZaz09_.:/-"}},
	},
	{
		name: "every key byte", expr: "az09_.-:v", canon: "az09_.-:v",
		match: []labels{{"az09_.-": "v"}},
	},
	{
		name: "longest key and value", expr: strings.Repeat("k", 32) + ":" + strings.Repeat("V", 64),
		canon: strings.Repeat("k", 32) + ":" + strings.Repeat("V", 64),
		match: []labels{{strings.Repeat("k", 32): strings.Repeat("V", 64)}},
	},
	{
		name: "longest prefix", expr: "k:" + strings.Repeat("v", 64) + "*", canon: "k:" + strings.Repeat("v", 64) + "*",
		match:   []labels{{"k": strings.Repeat("v", 64)}},
		noMatch: []labels{{"k": strings.Repeat("v", 63)}},
	},
	{
		name: "NOT matches a node without the label", expr: "NOT stage:canary", canon: "NOT stage:canary",
		match:   []labels{nil, {"stage": "prod"}},
		noMatch: []labels{{"stage": "canary"}},
	},
	{
		name: "AND binds tighter than OR", expr: "a:1 OR b:2 AND c:3", canon: "a:1 OR b:2 AND c:3",
		match:   []labels{{"a": "1"}, {"b": "2", "c": "3"}},
		noMatch: []labels{{"b": "2"}, {"c": "3"}, nil},
	},
	{
		name: "NOT binds tighter than AND", expr: "NOT a:1 AND b:2", canon: "NOT a:1 AND b:2",
		match:   []labels{{"b": "2"}},
		noMatch: []labels{{"a": "1", "b": "2"}, nil},
	},
	{
		name: "parentheses group", expr: "(a:1 OR b:2) AND c:3", canon: "(a:1 OR b:2) AND c:3",
		match:   []labels{{"a": "1", "c": "3"}, {"b": "2", "c": "3"}},
		noMatch: []labels{{"a": "1"}, {"c": "3"}},
	},
	{
		name: "redundant parentheses dropped", expr: "((a:1)) AND ((b:2 AND c:3))", canon: "a:1 AND b:2 AND c:3",
		match:   []labels{{"a": "1", "b": "2", "c": "3"}},
		noMatch: []labels{{"a": "1", "b": "2"}},
	},
	{
		name: "nested OR flattened", expr: "(a:1 OR b:2) OR c:3", canon: "a:1 OR b:2 OR c:3",
		match:   []labels{{"a": "1"}, {"b": "2"}, {"c": "3"}},
		noMatch: []labels{nil},
	},
	{
		name: "parentheses without spaces", expr: "a:1 AND(b:2 OR c:3)AND d:4", canon: "a:1 AND (b:2 OR c:3) AND d:4",
		match:   []labels{{"a": "1", "c": "3", "d": "4"}},
		noMatch: []labels{{"a": "1", "d": "4"}},
	},
	{
		name: "NOT of a group", expr: "NOT (a:1 OR b:2)", canon: "NOT (a:1 OR b:2)",
		match:   []labels{nil, {"a": "2"}},
		noMatch: []labels{{"b": "2"}, {"a": "1"}},
	},
	{
		name: "NOT of a group of AND", expr: "NOT(a:1 AND b:2) OR c:3", canon: "NOT (a:1 AND b:2) OR c:3",
		match:   []labels{{"a": "1"}, {"a": "1", "b": "2", "c": "3"}},
		noMatch: []labels{{"a": "1", "b": "2"}},
	},
	{
		name: "NOT NOT", expr: "NOT NOT a:1", canon: "NOT NOT a:1",
		match:   []labels{{"a": "1"}},
		noMatch: []labels{nil},
	},
	{
		name: "NOT of a parenthesised NOT", expr: "NOT(NOT(a:1))", canon: "NOT NOT a:1",
		match: []labels{{"a": "1"}},
	},
	{
		name: "tabs and newlines separate", expr: "a:1\tAND\n\tb:2\r\nOR c:3", canon: "a:1 AND b:2 OR c:3",
		match:   []labels{{"a": "1", "b": "2"}, {"c": "3"}},
		noMatch: []labels{{"a": "1"}},
	},
	{
		name: "benchmark expression", expr: expr5,
		canon:   "region:us-east AND hw:rev2 AND NOT stage:canary* OR site:plant-1 AND line:3",
		match:   []labels{node6, {"site": "plant-1", "line": "3"}, {"region": "us-east", "hw": "rev2"}},
		noMatch: []labels{{"region": "us-east", "hw": "rev2", "stage": "canary-1"}, {"site": "plant-1"}, nil},
	},
	{
		name: "deepest nesting", expr: strings.Repeat("(", MaxDepth) + "a:1" + strings.Repeat(")", MaxDepth), canon: "a:1",
		match: []labels{{"a": "1"}},
	},
	{
		name: "most terms", expr: strings.Repeat("a:1 OR ", MaxTerms-1) + "b:2", canon: strings.Repeat("a:1 OR ", MaxTerms-1) + "b:2",
		match:   []labels{{"b": "2"}, {"a": "1"}},
		noMatch: []labels{{"a": "2"}},
	},
}

var invalidTests = []struct {
	name string
	expr string
	pos  int    // expected SyntaxError.Pos (0-based; the column is pos+1)
	msg  string // expected substring of SyntaxError.Msg
}{
	{"empty", "", 0, "empty expression"},
	{"only whitespace", "  \t", 3, "empty expression"},
	{"missing term after AND", "region:eu AND", 13, "expected term after AND"},
	{"missing term after AND before space", "region:eu AND ", 14, "expected term after AND"},
	{"missing term after OR", "a:1 OR", 6, "expected term after OR"},
	{"missing term after NOT", "NOT", 3, "expected term after NOT"},
	{"operator first", "AND a:1", 0, "expected term, got AND"},
	{"operator after operator", "a:1 AND OR b:2", 8, "expected term after AND, got OR"},
	{"lower-case keyword", "a:1 and b:2", 4, `got "and" (keywords are upper case)`},
	{"lower-case NOT", "not a:1", 0, `got "not" (keywords are upper case)`},
	{"two terms", "a:1 b:2", 4, `expected AND, OR or end of expression, got "b:2"`},
	{"unclosed parenthesis", "(a:1", 4, "expected ')' to close '(' at column 1"},
	{"unclosed inner parenthesis", "(a:1 AND (b:2)", 14, "expected ')' to close '(' at column 1"},
	{"unopened parenthesis", "a:1)", 3, "unexpected ')' without matching '('"},
	{"empty parentheses", "()", 1, "expected term after '(', got ')'"},
	{"two terms in parentheses", "(a:1 b:2)", 5, "expected AND, OR or ')'"},
	{"word without colon", "region", 0, `expected label:value term, got "region"`},
	{"empty key", ":x", 0, "expected label key before ':'"},
	{"upper-case key", "Region:x", 0, "invalid byte 'R' in label key"},
	{"bad byte in key", "re/gion:x", 2, "invalid byte '/' in label key"},
	{"key too long", strings.Repeat("k", 33) + ":v", 0, "label key longer than 32 bytes"},
	{"empty value", "region:", 7, "expected label value after ':' (use region:* for any value)"},
	{"space in value", "region:us east", 10, `got "east"`},
	{"star inside value", "region:us*east", 9, "'*' is allowed only at the end"},
	{"double star", "region:us**", 9, "'*' is allowed only at the end"},
	{"bad byte in value", "region:u$", 8, `invalid byte '$' in label value`},
	{"non-ASCII value", "region:zürich", 8, "invalid byte 0xc3 in label value"},
	{"value too long", "k:" + strings.Repeat("v", 65), 2, "label value longer than 64 bytes"},
	{"prefix too long", "k:" + strings.Repeat("v", 65) + "*", 2, "label value longer than 64 bytes"},
	{"star with others", "* AND a:1", 0, "'*' selects every node only as the whole expression"},
	{"star after OR", "a:1 OR *", 7, "'*' selects every node only"},
	{"NOT star", "NOT *", 4, "'*' selects every node only"},
	{"star in parentheses", "(*)", 1, "'*' selects every node only"},
	{"too long", strings.Repeat("a:1 OR ", 146) + "b:2", MaxLen, "expression longer than 1024 bytes"},
	{"too deep", strings.Repeat("(", MaxDepth+1) + "a:1" + strings.Repeat(")", MaxDepth+1), MaxDepth, "parentheses nested deeper than 32"},
	{"too many terms", strings.Repeat("a:1 OR ", MaxTerms) + "b:2", MaxTerms * 7, "more than 128 terms"},
	{"control byte in key", "a\x00:1", 1, "invalid byte 0x00 in label key"},
	{"canonical form too long", canonTooLong(), len(canonTooLong()), "canonical form longer than 1024 bytes"},
}

// canonTooLong returns an expression within MaxLen whose canonical form is longer,
// because String puts spaces around parentheses written without them.
func canonTooLong() string {
	s := "(b:1 OR c:1)" + strings.Repeat("AND(b:1 OR c:1)", 40)
	pad := " AND p:" + strings.Repeat("x", 64)
	for len(s)+len(pad) <= MaxLen {
		s += pad
	}
	return s
}

func TestParseValid(t *testing.T) {
	for _, tt := range validTests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.expr, err)
			}
			if got := e.String(); got != tt.canon {
				t.Errorf("String() = %q, want %q", got, tt.canon)
			}
			checkExpr(t, e)
			for _, l := range tt.match {
				if !e.Match(l) {
					t.Errorf("Match(%v) = false, want true", l)
				}
			}
			for _, l := range tt.noMatch {
				if e.Match(l) {
					t.Errorf("Match(%v) = true, want false", l)
				}
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tt := range invalidTests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.expr, e)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("errors.Is(%v, ErrSyntax) = false", err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SyntaxError", err, err)
			}
			if se.Pos != tt.pos {
				t.Errorf("Pos = %d, want %d (%v)", se.Pos, tt.pos, err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", se.Msg, tt.msg)
			}
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Parse("region:eu AND")
	const want = "cohort: at column 14: expected term after AND"
	if err == nil || err.Error() != want {
		t.Fatalf("Parse error = %v, want %q", err, want)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("MustParse(\"a:1 AND\") did not panic")
		}
		if s, ok := r.(string); !ok || !strings.Contains(s, "expected term after AND") {
			t.Errorf("panic value = %v, want the parse error", r)
		}
	}()
	MustParse("a:1 AND")
}

func TestZeroExpr(t *testing.T) {
	var zero Expr
	var nilExpr *Expr
	if zero.Match(node6) || nilExpr.Match(node6) {
		t.Error("zero or nil Expr matched a node")
	}
	if zero.String() != "" || nilExpr.String() != "" {
		t.Error("zero or nil Expr has a non-empty String")
	}
}

func TestMatchAllocs(t *testing.T) {
	e := MustParse(expr5)
	for _, l := range []labels{node6, {"site": "plant-1", "line": "3"}, nil} {
		if n := testing.AllocsPerRun(100, func() { e.Match(l) }); n != 0 {
			t.Errorf("Match(%v) allocates %v times, want 0", l, n)
		}
	}
}

func BenchmarkMatch5Terms(b *testing.B) {
	e := MustParse(expr5)
	b.ReportAllocs()
	for b.Loop() {
		if !e.Match(node6) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatch5TermsWorst matches a node that makes Match test all five terms.
func BenchmarkMatch5TermsWorst(b *testing.B) {
	e := MustParse(expr5)
	l := labels{"region": "us-east", "hw": "rev2", "stage": "canary-1", "site": "plant-1", "line": "3", "model": "x"}
	b.ReportAllocs()
	for b.Loop() {
		if !e.Match(l) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(expr5); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range validTests {
		f.Add(tt.expr)
	}
	for _, tt := range invalidTests {
		f.Add(tt.expr)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): error %v (%T) is not a *SyntaxError wrapping ErrSyntax", s, err, err)
			}
			if se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("Parse(%q): Pos %d outside [0, %d]", s, se.Pos, len(s))
			}
			return
		}
		checkExpr(t, e)
		canon := e.String()
		e2, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, canon, err)
		}
		if got := e2.String(); got != canon {
			t.Fatalf("String is not a fixpoint: %q -> %q -> %q", s, canon, got)
		}
		for _, l := range labelSets(e.root) {
			want := eval(e.root, l)
			if got := e.Match(l); got != want {
				t.Fatalf("Parse(%q).Match(%v) = %v, tree says %v", s, l, got, want)
			}
			if got := e2.Match(l); got != want {
				t.Fatalf("Parse(%q).Match(%v) = %v, original says %v", canon, l, got, want)
			}
		}
	})
}

// checkExpr checks the invariants of a parsed Expr: one instruction per term, every
// jump forward or to a verdict, and a canonical form within the limits.
func checkExpr(t testing.TB, e *Expr) {
	t.Helper()
	if n := countTerms(e.root); n != len(e.prog) || n > MaxTerms {
		t.Fatalf("%q: %d terms, %d instructions", e, n, len(e.prog))
	}
	if len(e.String()) > MaxLen {
		t.Fatalf("%q: canonical form of %d bytes", e, len(e.String()))
	}
	if e.start != accept && e.start != reject && (e.start < 0 || int(e.start) >= len(e.prog)) {
		t.Fatalf("%q: start %d out of range", e, e.start)
	}
	for pc, in := range e.prog {
		for _, to := range []int32{in.onTrue, in.onFalse} {
			if to != accept && to != reject && (int(to) <= pc || int(to) >= len(e.prog)) {
				t.Fatalf("%q: instruction %d jumps to %d", e, pc, to)
			}
		}
	}
}

// countTerms counts the term nodes under n.
func countTerms(n *node) int {
	if n.kind == nodeTerm {
		return 1
	}
	c := 0
	for _, k := range n.kids {
		c += countTerms(k)
	}
	return c
}

// eval is the reference evaluator: it walks the syntax tree the obvious way.
func eval(n *node, l labels) bool {
	switch n.kind {
	case nodeAll:
		return true
	case nodeTerm:
		v, ok := l[n.key]
		switch n.op {
		case opEqual:
			return ok && v == n.val
		case opPrefix:
			return ok && strings.HasPrefix(v, n.val)
		}
		return ok
	case nodeNot:
		return !eval(n.kids[0], l)
	case nodeAnd:
		for _, k := range n.kids {
			if !eval(k, l) {
				return false
			}
		}
		return true
	case nodeOr:
		for _, k := range n.kids {
			if eval(k, l) {
				return true
			}
		}
		return false
	}
	panic("unknown node kind")
}

// labelSets returns label sets that exercise the terms under n: each term's label
// set to its value, to its value extended, to another value, or absent, chosen
// deterministically per set.
func labelSets(n *node) []labels {
	var terms []*node
	var walk func(*node)
	walk = func(n *node) {
		if n.kind == nodeTerm {
			terms = append(terms, n)
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	walk(n)
	sets := []labels{nil}
	for j := range 16 {
		l := labels{}
		for i, tm := range terms {
			switch (i*7 + j*13 + i*j) % 4 {
			case 0:
				l[tm.key] = tm.val
			case 1:
				l[tm.key] = tm.val + "-x"
			case 2:
				l[tm.key] = "other"
			}
		}
		sets = append(sets, l)
	}
	return sets
}
