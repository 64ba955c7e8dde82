package broker

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"edgeota/test/testutil"
)

// recordHandler sends every record it handles to a channel.
type recordHandler struct{ out chan<- slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.out <- r.Clone()
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// TestConnectionErrorLogHasMessage: a client whose first packet is not a
// CONNECT ends its connection with an error, which mochi logs without a
// message; the broker's log names it.
func TestConnectionErrorLogHasMessage(t *testing.T) {
	records := make(chan slog.Record, 64)
	b, err := Start("", slog.New(recordHandler{records}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{0x30, 0x00}); err != nil { // PUBLISH before CONNECT
		t.Fatal(err)
	}
	timeout := time.After(testutil.DefaultCeiling)
	for {
		select {
		case r := <-records:
			if r.Message == "" {
				t.Fatalf("a record without a message: %v", r)
			}
			hasErr := false
			r.Attrs(func(a slog.Attr) bool {
				hasErr = hasErr || a.Key == "error"
				return true
			})
			if hasErr {
				if r.Message != connectionEnded {
					t.Fatalf("the connection's error logged as %q, want %q", r.Message, connectionEnded)
				}
				return
			}
		case <-timeout:
			t.Fatal("no record of the refused connection within 10s")
		}
	}
}
