package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

// writeFraming programs, at the offset next, both copies of a record of
// framing version v (its tag's high nibble v-1), as a later node agent
// would, and returns the offset after them.
func writeFraming(tb testing.TB, f Flash, next int64, v int, seq uint64, payload []byte) int64 {
	tb.Helper()
	size := copySize(len(payload), f.WriteSize())
	buf := make([]byte, size)
	for _, tag := range []byte{copyFirst, copySecond} {
		encodeCopy(buf, tag, seq, payload)
		buf[3] = byte(v-1)<<4 | tag
		// Reseal: the CRC covers the tag.
		n := headerSize + len(payload)
		binary.LittleEndian.PutUint32(buf[n:], crc32.Checksum(buf[:n], castagnoli))
		if err := f.Program(next, buf); err != nil {
			tb.Fatal(err)
		}
		next += int64(size)
	}
	return next
}

// TestNewerFramingRefused: a journal holding a record of a newer framing
// (after records of ours, or alone) is refused by Open, with an error that
// names both versions, and nothing is written; a journal of ours opens.
func TestNewerFramingRefused(t *testing.T) {
	g := geometry{erase: 4096, write: 8, blocks: 4}
	for _, tc := range []struct {
		name  string
		ours  int // records of framing 1 first
		newer int // then this framing (0: none)
	}{
		{"ours only", 3, 0},
		{"newer after ours", 3, 2},
		{"newer alone", 0, 2},
		{"much newer", 0, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSim(t, g, 1)
			j := mustOpen(t, f, g.blocks)
			for i := range tc.ours {
				mustAppend(t, j, []byte{byte(i)})
			}
			if tc.newer > 0 {
				_, seq, _ := j.Latest()
				writeFraming(t, f, int64(j.pos), tc.newer, seq+1, []byte("from the future"))
			}
			ops := f.Ops()
			j2, err := Open(f, 0, g.blocks)
			if tc.newer == 0 {
				if err != nil {
					t.Fatal(err)
				}
				wantLatest(t, j2, []byte{byte(tc.ours - 1)}, uint64(tc.ours))
				return
			}
			if !errors.Is(err, ErrFormatTooNew) {
				t.Fatalf("Open = %v, want ErrFormatTooNew", err)
			}
			if want := fmt.Sprintf("framing %d, this node agent reads framings up to 1", tc.newer); !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not say %q", err, want)
			}
			if f.Ops() != ops {
				t.Fatalf("Open wrote to the flash: %d operations", f.Ops()-ops)
			}
			// A journal that had this flash open refuses its next append
			// once it scans again (after a failed append).
			j.stale = true
			if err := j.Append([]byte("x")); !errors.Is(err, ErrFormatTooNew) || f.Ops() != ops {
				t.Fatalf("Append after a rescan = %v, %d operations", err, f.Ops()-ops)
			}
		})
	}
}
