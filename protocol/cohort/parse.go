package cohort

import (
	"fmt"
	"strings"
)

// Limits on the parts of a term (docs/protocol.md section 0).
const (
	maxKeyLen   = 32
	maxValueLen = 64
)

// nodeKind is the kind of a syntax tree node.
type nodeKind uint8

const (
	nodeAll  nodeKind = iota // "*" alone
	nodeTerm                 // key:value
	nodeNot                  // NOT kids[0]
	nodeAnd                  // kids[0] AND kids[1] AND ...
	nodeOr                   // kids[0] OR kids[1] OR ...
)

// node is a syntax tree node. AND and OR are n-ary and never have a child of their
// own kind: Parse flattens "(a OR b) OR c" into one OR of three terms.
type node struct {
	kind nodeKind
	op   termOp // nodeTerm only
	key  string // nodeTerm only
	val  string // nodeTerm only: the value without a trailing "*"
	kids []*node
}

// termOp says how a term compares a label value.
type termOp uint8

const (
	opEqual   termOp = iota // key:value
	opPrefix                // key:value*
	opPresent               // key:*
)

// inst is one compiled term: look up key, compare, jump. Negation is compiled into
// the choice of targets, so there is no NOT instruction.
type inst struct {
	key     string
	val     string
	op      termOp
	onTrue  int32 // next pc, or accept or reject
	onFalse int32
}

// Verdicts, as jump targets. Both are negative so that Match's bounds check ends
// the loop.
const (
	accept int32 = -1
	reject int32 = -2
)

// Parse parses a cohort expression (see the package documentation for the
// grammar). Every error is a [*SyntaxError] wrapping [ErrSyntax].
//
// An expression whose canonical form ([Expr.String]) would be longer than [MaxLen]
// is refused too, so that the String of every parsed Expr parses again. That can
// only happen near the limit, when parentheses are written without spaces around
// them: "a:1 AND(b:2 OR c:3)" is written back as "a:1 AND (b:2 OR c:3)".
func Parse(expr string) (*Expr, error) {
	if len(expr) > MaxLen {
		return nil, &SyntaxError{Pos: MaxLen, Msg: fmt.Sprintf("expression longer than %d bytes", MaxLen)}
	}
	if trimSpace(expr) == "*" {
		return &Expr{root: &node{kind: nodeAll}, start: accept, canon: "*"}, nil
	}
	p := &parser{src: expr}
	p.next()
	if p.tok.kind == tokEOF {
		return nil, &SyntaxError{Pos: p.tok.pos, Msg: "empty expression"}
	}
	root, err := p.parseOr("")
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		if p.tok.kind == tokRParen {
			return nil, p.errf(p.tok.pos, "unexpected ')' without matching '('")
		}
		return nil, p.errf(p.tok.pos, "expected AND, OR or end of expression, got %s", p.tok.describe())
	}
	var b strings.Builder
	root.write(&b)
	canon := b.String()
	if len(canon) > MaxLen {
		return nil, &SyntaxError{Pos: len(expr), Msg: fmt.Sprintf("canonical form longer than %d bytes", MaxLen)}
	}
	c := compiler{prog: make([]inst, 0, p.terms)}
	start := c.compile(root, accept, reject)
	return &Expr{root: root, prog: c.finish(), start: c.final(start), canon: canon}, nil
}

// isSpace reports whether c separates tokens.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// trimSpace trims the bytes isSpace accepts from both ends of s.
func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tokEOF tokKind = iota
	tokLParen
	tokRParen
	tokAnd
	tokOr
	tokNot
	tokWord // a term, or anything else that is not a keyword or parenthesis
)

// token is one lexical token and its byte offset.
type token struct {
	kind tokKind
	pos  int
	text string
}

// describe names the token for an error message.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokWord:
		switch strings.ToUpper(t.text) {
		case "AND", "OR", "NOT":
			return fmt.Sprintf("%q (keywords are upper case)", t.text)
		}
		return fmt.Sprintf("%q", t.text)
	}
	return t.text // a keyword
}

// parser is a recursive-descent parser with one token of lookahead.
type parser struct {
	src   string
	pos   int   // next byte to scan
	tok   token // current token
	depth int   // open parentheses
	terms int   // terms seen so far
}

// next scans the next token into p.tok.
func (p *parser) next() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	start := p.pos
	if start == len(p.src) {
		p.tok = token{kind: tokEOF, pos: start}
		return
	}
	switch p.src[start] {
	case '(':
		p.pos++
		p.tok = token{kind: tokLParen, pos: start, text: "("}
		return
	case ')':
		p.pos++
		p.tok = token{kind: tokRParen, pos: start, text: ")"}
		return
	}
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if isSpace(c) || c == '(' || c == ')' {
			break
		}
		p.pos++
	}
	w := p.src[start:p.pos]
	kind := tokWord
	switch w {
	case "AND":
		kind = tokAnd
	case "OR":
		kind = tokOr
	case "NOT":
		kind = tokNot
	}
	p.tok = token{kind: kind, pos: start, text: w}
}

// errf returns a *SyntaxError at byte offset pos.
func (p *parser) errf(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// parseOr parses and { OR and }. ctx names what came before ("after '('"), for
// error messages.
func (p *parser) parseOr(ctx string) (*node, error) {
	first, err := p.parseAnd(ctx)
	if err != nil || p.tok.kind != tokOr {
		return first, err
	}
	n := &node{kind: nodeOr}
	n.add(first)
	for p.tok.kind == tokOr {
		p.next()
		k, err := p.parseAnd("after OR")
		if err != nil {
			return nil, err
		}
		n.add(k)
	}
	return n, nil
}

// parseAnd parses unary { AND unary }.
func (p *parser) parseAnd(ctx string) (*node, error) {
	first, err := p.parseUnary(ctx)
	if err != nil || p.tok.kind != tokAnd {
		return first, err
	}
	n := &node{kind: nodeAnd}
	n.add(first)
	for p.tok.kind == tokAnd {
		p.next()
		k, err := p.parseUnary("after AND")
		if err != nil {
			return nil, err
		}
		n.add(k)
	}
	return n, nil
}

// add appends k to the AND or OR node n, splicing in k's children when k is of the
// same kind (from parentheses), which keeps the tree canonical.
func (n *node) add(k *node) {
	if k.kind == n.kind {
		n.kids = append(n.kids, k.kids...)
		return
	}
	n.kids = append(n.kids, k)
}

// parseUnary parses { NOT } primary. A run of NOTs is read in a loop, not by
// recursion, so its length is bounded only by MaxLen.
func (p *parser) parseUnary(ctx string) (*node, error) {
	nots := 0
	for p.tok.kind == tokNot {
		nots++
		p.next()
		ctx = "after NOT"
	}
	n, err := p.parsePrimary(ctx)
	if err != nil {
		return nil, err
	}
	for range nots {
		n = &node{kind: nodeNot, kids: []*node{n}}
	}
	return n, nil
}

// parsePrimary parses a term or a parenthesised expression.
func (p *parser) parsePrimary(ctx string) (*node, error) {
	switch p.tok.kind {
	case tokLParen:
		open := p.tok.pos
		p.depth++
		if p.depth > MaxDepth {
			return nil, p.errf(open, "parentheses nested deeper than %d", MaxDepth)
		}
		p.next()
		n, err := p.parseOr("after '('")
		if err != nil {
			return nil, err
		}
		switch p.tok.kind {
		case tokRParen:
		case tokEOF:
			return nil, p.errf(p.tok.pos, "expected ')' to close '(' at column %d", open+1)
		default:
			return nil, p.errf(p.tok.pos, "expected AND, OR or ')', got %s", p.tok.describe())
		}
		p.depth--
		p.next()
		return n, nil
	case tokWord:
		n, err := p.term(p.tok.text, p.tok.pos)
		if err != nil {
			return nil, err
		}
		p.next()
		return n, nil
	}
	if ctx == "" {
		return nil, p.errf(p.tok.pos, "expected term, got %s", p.tok.describe())
	}
	if p.tok.kind == tokEOF {
		return nil, p.errf(p.tok.pos, "expected term %s", ctx)
	}
	return nil, p.errf(p.tok.pos, "expected term %s, got %s", ctx, p.tok.describe())
}

// term checks the word w at offset pos and returns it as a term node.
func (p *parser) term(w string, pos int) (*node, error) {
	if w == "*" {
		return nil, p.errf(pos, "'*' selects every node only as the whole expression; use key:* for a label that is present")
	}
	colon := strings.IndexByte(w, ':')
	if colon < 0 {
		return nil, p.errf(pos, "expected label:value term, got %s", p.tok.describe())
	}
	p.terms++
	if p.terms > MaxTerms {
		return nil, p.errf(pos, "more than %d terms", MaxTerms)
	}
	key, val := w[:colon], w[colon+1:]
	switch {
	case key == "":
		return nil, p.errf(pos, "expected label key before ':'")
	case len(key) > maxKeyLen:
		return nil, p.errf(pos, "label key longer than %d bytes", maxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if !isKeyChar(key[i]) {
			return nil, p.errf(pos+i, "invalid byte %s in label key (want a-z, 0-9, '_', '.' or '-')", quoteByte(key[i]))
		}
	}
	vpos := pos + colon + 1
	n := &node{kind: nodeTerm, key: key, op: opEqual}
	switch {
	case val == "":
		return nil, p.errf(vpos, "expected label value after ':' (use %s:* for any value)", key)
	case val == "*":
		n.op = opPresent
		return n, nil
	case val[len(val)-1] == '*':
		n.op = opPrefix
		val = val[:len(val)-1]
	}
	if len(val) > maxValueLen {
		return nil, p.errf(vpos, "label value longer than %d bytes", maxValueLen)
	}
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c == '*' {
			return nil, p.errf(vpos+i, "'*' is allowed only at the end of a label value")
		}
		if !isValueChar(c) {
			return nil, p.errf(vpos+i, "invalid byte %s in label value (want A-Z, a-z, 0-9, '_', '.', ':', '/' or '-')", quoteByte(c))
		}
	}
	n.val = val
	return n, nil
}

// quoteByte shows c for an error message: quoted when printable ASCII, else in hex.
func quoteByte(c byte) string {
	if 0x20 < c && c < 0x7f {
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("%#02x", c)
}

// isKeyChar reports whether c may appear in a label key: [a-z0-9_.-].
func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// isValueChar reports whether c may appear in a label value: [A-Za-z0-9_.:/-].
func isValueChar(c byte) bool {
	return isKeyChar(c) || 'A' <= c && c <= 'Z' || c == ':' || c == '/'
}

// prec is the binding strength of a node in the canonical text; higher binds
// tighter.
func (n *node) prec() int {
	switch n.kind {
	case nodeOr:
		return 1
	case nodeAnd:
		return 2
	case nodeNot:
		return 3
	}
	return 4
}

// write appends the canonical text of n to b.
func (n *node) write(b *strings.Builder) {
	switch n.kind {
	case nodeAll:
		b.WriteByte('*')
	case nodeTerm:
		b.WriteString(n.key)
		b.WriteByte(':')
		b.WriteString(n.val)
		if n.op != opEqual {
			b.WriteByte('*')
		}
	case nodeNot:
		b.WriteString("NOT ")
		n.kids[0].writeIn(b, n.prec())
	case nodeAnd, nodeOr:
		sep := " AND "
		if n.kind == nodeOr {
			sep = " OR "
		}
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			k.writeIn(b, n.prec())
		}
	}
}

// writeIn writes n as an operand of an operator of precedence prec, in
// parentheses when n binds more loosely.
func (n *node) writeIn(b *strings.Builder, prec int) {
	if n.prec() >= prec {
		n.write(b)
		return
	}
	b.WriteByte('(')
	n.write(b)
	b.WriteByte(')')
}

// compiler turns a syntax tree into a flat list of term tests with true and false
// jump targets, so that Match is a loop with no recursion, stack or interface call
// and evaluates each term at most once, short-circuiting like && and ||.
//
// compile emits the last operand first, so that the targets it needs already exist;
// finish then reverses the list, which puts the terms back in source order and makes
// every jump go forward.
type compiler struct {
	prog []inst
}

// compile emits code that jumps to t when n is true and to f when it is false, and
// returns its entry point (in emission order).
func (c *compiler) compile(n *node, t, f int32) int32 {
	switch n.kind {
	case nodeTerm:
		c.prog = append(c.prog, inst{key: n.key, val: n.val, op: n.op, onTrue: t, onFalse: f})
		return int32(len(c.prog) - 1)
	case nodeNot:
		return c.compile(n.kids[0], f, t)
	case nodeAnd:
		next := t
		for i := len(n.kids) - 1; i >= 0; i-- {
			next = c.compile(n.kids[i], next, f)
		}
		return next
	case nodeOr:
		next := f
		for i := len(n.kids) - 1; i >= 0; i-- {
			next = c.compile(n.kids[i], t, next)
		}
		return next
	}
	return t // nodeAll
}

// final maps a target in emission order to its place in the reversed program.
func (c *compiler) final(pc int32) int32 {
	if pc < 0 {
		return pc
	}
	return int32(len(c.prog)-1) - pc
}

// finish reverses the program and renumbers its jump targets.
func (c *compiler) finish() []inst {
	n := len(c.prog)
	out := make([]inst, n)
	for i, in := range c.prog {
		in.onTrue, in.onFalse = c.final(in.onTrue), c.final(in.onFalse)
		out[n-1-i] = in
	}
	return out
}
