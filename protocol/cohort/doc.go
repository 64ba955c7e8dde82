// Package cohort parses and evaluates the cohort expressions of a deployment
// (docs/protocol.md section 7, key 5 "cohort", YAML field target_cohort).
//
// A cohort expression selects nodes by their labels. [Parse] turns the text into an
// [Expr]; [Expr.Match] tells whether a node with the given labels belongs to the
// cohort; [Expr.String] gives the canonical form of the expression.
//
//	e := cohort.MustParse("region:us-east AND NOT stage:canary*")
//	e.Match(map[string]string{"region": "us-east", "stage": "prod"}) // true
//
// The package is pure: no goroutines, clocks or files. An [Expr] is immutable once
// parsed and safe for concurrent use.
//
// # Grammar
//
// In EBNF (ISO 14977 style: {x} repeats x zero or more times, [x] makes it optional):
//
//	cohort  = ws, ( "*" | or ), ws .
//	or      = and, { ws, "OR", ws, and } .
//	and     = unary, { ws, "AND", ws, unary } .
//	unary   = { "NOT", ws }, primary .
//	primary = term | "(", ws, or, ws, ")" .
//	term    = key, ":", value .
//	key     = keychar, { keychar } .                (* 1 to 32 bytes *)
//	value   = "*" | valchar, { valchar }, [ "*" ] . (* 1 to 64 bytes before a "*" *)
//	keychar = "a"…"z" | "0"…"9" | "_" | "." | "-" .
//	valchar = "A"…"Z" | "a"…"z" | "0"…"9" | "_" | "." | ":" | "/" | "-" .
//	ws      = { " " | "\t" | "\n" | "\r" } .
//
// Whitespace is required between two words (terms and keywords) and optional next to
// a parenthesis, so "a:b AND(c:d OR e:f)" is accepted. The key and value character
// sets are the label syntax of docs/protocol.md section 0.
//
// # Semantics
//
//   - A term key:value splits at the first ":", so "site:plant:1" has key "site" and
//     value "plant:1". It matches a node whose label key equals value exactly.
//   - A value ending in "*" is a prefix: "stage:canary*" matches "canary" and
//     "canary-2". A value of just "*" matches any node that has the label at all.
//   - A node without the label never matches a term on it, so "NOT stage:canary"
//     matches a node that has no stage label.
//   - NOT binds tightest, then AND, then OR: "a:1 OR b:2 AND NOT c:3" means
//     "a:1 OR (b:2 AND (NOT c:3))". Parentheses group.
//   - "*" alone, as the whole expression, selects every node. It may not appear
//     elsewhere; use key:* to test for the presence of a label.
//
// The keywords AND, OR and NOT are case-sensitive and upper case: "and" is not an
// operator, and the error for it says so.
//
// # Limits
//
// An expression is at most [MaxLen] bytes, nests parentheses at most [MaxDepth] deep
// and holds at most [MaxTerms] terms. Input beyond a limit is refused with a
// [*SyntaxError], never a panic.
//
// # Errors
//
// Every error returned by [Parse] is a [*SyntaxError] that wraps [ErrSyntax] and
// names the column of the offending byte and what was expected there:
//
//	cohort: at column 14: expected term after AND
package cohort
