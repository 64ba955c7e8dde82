package protocol

import (
	"encoding/binary"
	"fmt"
)

// Bounds of docs/protocol.md section 2.
const (
	MaxDepth     = 8         // nesting of arrays and maps
	MaxEntries   = 1024      // items of an array or pairs of a map
	MaxStringLen = 64 << 10  // bytes of a byte or text string
	MaxDocSize   = 256 << 10 // bytes of one encoded document (deployments embed manifests)

	// MaxReasonLen is the most bytes of a status event's reason text
	// (status key 5).
	MaxReasonLen = 256
)

// MaxErrorTextLen is the most bytes of text a gateway's 4.00 Bad Request
// carries: the decoder's reason (docs/protocol.md section 5).
const MaxErrorTextLen = 120

// CBOR major types.
const (
	majUint  = 0
	majNint  = 1
	majBytes = 2
	majText  = 3
	majArray = 4
	majMap   = 5
	majTag   = 6
	majOther = 7
)

var majName = [8]string{"uint", "negative int", "bstr", "tstr", "array", "map", "tag", "simple or float"}

// field describes one integer key of a document map.
type field struct {
	name     string
	major    uint8   // expected major type
	fixedLen int     // for bstr: exact length, 0 when free
	required bool    // key must be present
	nested   *schema // for maps keyed by integers: their schema
}

// schema describes an integer-keyed map of the contract.
type schema struct {
	doc    string
	fields [64]*field // by key; nil means unknown (and critical, since below 64)
	// optional holds the optional keys (64 and up) whose type the contract
	// defines; other keys of 64 and up are skipped unchecked.
	optional map[uint64]*field
}

func newSchema(doc string, fs map[uint8]*field) *schema {
	s := &schema{doc: doc}
	for k, f := range fs {
		s.fields[k] = f
	}
	return s
}

// withOptional adds the optional keys (64 and up) the shape pass checks
// when present: their type, length and nested schema.
func (s *schema) withOptional(fs map[uint64]*field) *schema {
	s.optional = fs
	return s
}

func req(name string, major uint8) *field { return &field{name: name, major: major, required: true} }
func opt(name string, major uint8) *field { return &field{name: name, major: major} }
func reqBytes(name string, n int) *field {
	return &field{name: name, major: majBytes, fixedLen: n, required: true}
}

// scanner walks one CBOR data item without building values. It enforces the
// bounds of section 2 and, for integer-keyed maps with a schema, the key
// rules; decoding of values is left to fxamacker/cbor.
type scanner struct {
	b   []byte
	off int
}

func (s *scanner) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, s.off, fmt.Sprintf(format, args...))
}

// head reads an item head and returns its major type and argument. It
// refuses indefinite lengths and reserved additional information.
func (s *scanner) head() (major uint8, arg uint64, err error) {
	if s.off >= len(s.b) {
		return 0, 0, s.errf("unexpected end of data")
	}
	ib := s.b[s.off]
	major, ai := ib>>5, ib&0x1f
	s.off++
	switch {
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 24:
		if s.off+1 > len(s.b) {
			return 0, 0, s.errf("unexpected end of data")
		}
		arg = uint64(s.b[s.off])
		s.off++
	case ai == 25:
		if s.off+2 > len(s.b) {
			return 0, 0, s.errf("unexpected end of data")
		}
		arg = uint64(binary.BigEndian.Uint16(s.b[s.off:]))
		s.off += 2
	case ai == 26:
		if s.off+4 > len(s.b) {
			return 0, 0, s.errf("unexpected end of data")
		}
		arg = uint64(binary.BigEndian.Uint32(s.b[s.off:]))
		s.off += 4
	case ai == 27:
		if s.off+8 > len(s.b) {
			return 0, 0, s.errf("unexpected end of data")
		}
		arg = binary.BigEndian.Uint64(s.b[s.off:])
		s.off += 8
	case ai == 31:
		s.off--
		return 0, 0, s.errf("indefinite length is not allowed")
	default:
		s.off--
		return 0, 0, s.errf("reserved additional information %d", ai)
	}
	return major, arg, nil
}

// item checks one data item of any kind at the given depth (1 for the
// top-level item) and returns its major type and, for strings, its length.
func (s *scanner) item(depth int, sch *schema) (uint8, uint64, error) {
	start := s.off
	major, arg, err := s.head()
	if err != nil {
		return 0, 0, err
	}
	switch major {
	case majUint, majNint:
	case majBytes, majText:
		if arg > MaxStringLen {
			s.off = start
			return 0, 0, s.errf("string of %d bytes is over the %d-byte limit", arg, MaxStringLen)
		}
		if arg > uint64(len(s.b)-s.off) {
			return 0, 0, s.errf("string of %d bytes runs past the end of data", arg)
		}
		s.off += int(arg)
	case majArray, majMap:
		if depth > MaxDepth {
			s.off = start
			return 0, 0, s.errf("nesting deeper than %d", MaxDepth)
		}
		if arg > MaxEntries {
			s.off = start
			return 0, 0, s.errf("%s of %d entries is over the %d-entry limit", majName[major], arg, MaxEntries)
		}
		if major == majMap && sch != nil {
			return major, arg, s.schemaMap(depth, int(arg), sch)
		}
		n := int(arg)
		if major == majMap {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if _, _, err := s.item(depth+1, nil); err != nil {
				return 0, 0, err
			}
		}
	case majTag:
		s.off = start
		return 0, 0, s.errf("tags are not allowed")
	case majOther:
		// Simple values and floats; the float forms carry their payload in
		// the argument already consumed by head. Floats are refused by the
		// typed decoder when a field is an integer.
		if arg >= 20 && arg <= 23 {
			break
		}
		if s.b[start]&0x1f >= 25 {
			s.off = start
			return 0, 0, s.errf("floating-point values are not allowed")
		}
	}
	return major, arg, nil
}

// schemaMap checks the n pairs of a map described by sch.
func (s *scanner) schemaMap(depth, n int, sch *schema) error {
	var seen uint64
	for i := 0; i < n; i++ {
		keyOff := s.off
		major, key, err := s.head()
		if err != nil {
			return err
		}
		if major != majUint {
			s.off = keyOff
			return s.errf("%s: map key of type %s; keys are unsigned integers", sch.doc, majName[major])
		}
		var f *field
		if key < 64 {
			f = sch.fields[key]
			if f == nil {
				s.off = keyOff
				return s.errf("%s: unknown critical key %d", sch.doc, key)
			}
			if seen&(1<<key) != 0 {
				s.off = keyOff
				return s.errf("%s: duplicate key %d", sch.doc, key)
			}
			seen |= 1 << key
		} else {
			f = sch.optional[key]
		}
		valOff := s.off
		var nested *schema
		if f != nil {
			nested = f.nested
		}
		vmajor, varg, err := s.item(depth+1, nested)
		if err != nil {
			return err
		}
		if f == nil {
			continue
		}
		if vmajor != f.major {
			s.off = valOff
			return s.errf("%s: key %d (%s): want %s, got %s", sch.doc, key, f.name, majName[f.major], majName[vmajor])
		}
		if f.fixedLen > 0 && varg != uint64(f.fixedLen) {
			s.off = valOff
			return s.errf("%s: key %d (%s): want %d bytes, got %d", sch.doc, key, f.name, f.fixedLen, varg)
		}
	}
	for k := 1; k < 64; k++ {
		if f := sch.fields[k]; f != nil && f.required && seen&(1<<k) == 0 {
			return fmt.Errorf("%w: %s: required key %d (%s) is missing", ErrMalformed, sch.doc, k, f.name)
		}
	}
	return nil
}

// checkShape checks that b holds exactly one data item: a map described by
// sch, or, when batch is set, an array of at most MaxEntries such maps.
func checkShape(b []byte, sch *schema, batch bool) error {
	if len(b) > MaxDocSize {
		return fmt.Errorf("%w: %d bytes is over the %d-byte document limit", ErrMalformed, len(b), MaxDocSize)
	}
	s := scanner{b: b}
	if len(b) == 0 {
		return s.errf("empty input")
	}
	if batch {
		major, n, err := s.head()
		if err != nil {
			return err
		}
		if major != majArray {
			return fmt.Errorf("%w: want an array of %s, got %s", ErrMalformed, sch.doc, majName[major])
		}
		if n > MaxEntries {
			return fmt.Errorf("%w: array of %d entries is over the %d-entry limit", ErrMalformed, n, MaxEntries)
		}
		for i := uint64(0); i < n; i++ {
			if err := s.top(2, sch); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
	} else if err := s.top(1, sch); err != nil {
		return err
	}
	if s.off != len(b) {
		return s.errf("%d bytes of trailing data", len(b)-s.off)
	}
	return nil
}

func (s *scanner) top(depth int, sch *schema) error {
	off := s.off
	major, _, err := s.item(depth, sch)
	if err != nil {
		return err
	}
	if major != majMap {
		s.off = off
		return s.errf("want a %s map, got %s", sch.doc, majName[major])
	}
	return nil
}
