package blelink_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/att"
	"github.com/go-ble/ble/linux/gatt"

	"edgeota/firmware-sim/blelink"
	"edgeota/test/testutil"
)

var (
	svcUUID    = ble.MustParse("0b000001-0000-4000-8000-000000000001")
	longUUID   = ble.MustParse("0b000002-0000-4000-8000-000000000001")
	writeUUID  = ble.MustParse("0b000003-0000-4000-8000-000000000001")
	notifyUUID = ble.MustParse("0b000004-0000-4000-8000-000000000001")
)

// testService has a 300-byte readable value, a write-only value that
// refuses writes starting with 0xff, and a characteristic that notifies
// 3 values on subscription.
func testService(written chan<- []byte) *ble.Service {
	long := bytes.Repeat([]byte("0123456789"), 30)
	s := ble.NewService(svcUUID)
	s.NewCharacteristic(longUUID).HandleRead(ble.ReadHandlerFunc(func(req ble.Request, rsp ble.ResponseWriter) {
		if req.Offset() > len(long) {
			rsp.SetStatus(ble.ErrInvalidOffset)
			return
		}
		v := long[req.Offset():]
		rsp.Write(v[:min(len(v), rsp.Cap())])
	}))
	s.NewCharacteristic(writeUUID).HandleWrite(ble.WriteHandlerFunc(func(req ble.Request, rsp ble.ResponseWriter) {
		if len(req.Data()) > 0 && req.Data()[0] == 0xff {
			rsp.SetStatus(ble.ATTError(0x80))
			return
		}
		written <- append([]byte(nil), req.Data()...)
	}))
	s.NewCharacteristic(notifyUUID).HandleNotify(ble.NotifyHandlerFunc(func(_ ble.Request, n ble.Notifier) {
		for i := range 3 {
			if _, err := n.Write([]byte{byte(i)}); err != nil {
				return
			}
		}
		<-n.Context().Done()
	}))
	return s
}

// serve runs go-ble's ATT server over the peripheral end until it closes.
func serve(t testing.TB, conn ble.Conn, svc *ble.Service) <-chan struct{} {
	t.Helper()
	srv, err := gatt.NewServerWithName("test")
	if err != nil {
		t.Fatal(err)
	}
	srv.AddService(svc)
	conn.SetRxMTU(ble.MaxMTU)
	as, err := att.NewServer(srv.DB(), conn)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { as.Loop(); close(done) }()
	return done
}

func find(t testing.TB, p *ble.Profile, u ble.UUID) *ble.Characteristic {
	t.Helper()
	c, ok := p.Find(ble.NewCharacteristic(u)).(*ble.Characteristic)
	if !ok {
		t.Fatalf("characteristic %s not found", u)
	}
	return c
}

func TestGATTOverPipe(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		central, periph := blelink.Pipe("0a:00:00:00:00:00", "0a:00:00:00:00:01")
		written := make(chan []byte, 4)
		done := serve(t, periph, testService(written))
		cli, err := gatt.NewClient(central)
		if err != nil {
			t.Fatal(err)
		}
		prof, err := cli.DiscoverProfile(true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cli.ReadLongCharacteristic(find(t, prof, longUUID))
		if err != nil || len(got) != 300 {
			t.Fatalf("read long: %d bytes, %v", len(got), err)
		}
		wc := find(t, prof, writeUUID)
		if err := cli.WriteCharacteristic(wc, []byte("hello"), false); err != nil {
			t.Fatal(err)
		}
		if w := <-written; string(w) != "hello" {
			t.Fatalf("written %q", w)
		}
		var attErr ble.ATTError
		if err := cli.WriteCharacteristic(wc, []byte{0xff}, false); !errors.As(err, &attErr) || attErr != 0x80 {
			t.Fatalf("refused write: %v", err)
		}
		if err := cli.WriteCharacteristic(wc, make([]byte, 21), false); err == nil {
			t.Fatal("a write over MTU-3 succeeded before the MTU exchange")
		}
		if mtu, err := cli.ExchangeMTU(ble.MaxMTU); err != nil || mtu != ble.MaxMTU {
			t.Fatalf("ExchangeMTU = %d, %v", mtu, err)
		}
		if err := cli.WriteCharacteristic(wc, make([]byte, 200), false); err != nil {
			t.Fatalf("200-byte write after the MTU exchange: %v", err)
		}
		<-written
		notes := make(chan []byte, 8)
		if err := cli.Subscribe(find(t, prof, notifyUUID), false, func(b []byte) { notes <- append([]byte(nil), b...) }); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			select {
			case b := <-notes:
				if !bytes.Equal(b, []byte{byte(i)}) {
					t.Fatalf("notification %d = %x", i, b)
				}
			case <-time.After(testutil.DefaultCeiling):
				t.Fatal("no notification")
			}
		}
		if err := cli.CancelConnection(); err != nil {
			t.Fatal(err)
		}
		<-cli.Disconnected()
		<-periph.Disconnected()
		<-done
		if _, err := cli.ReadCharacteristic(find(t, prof, longUUID)); err == nil {
			t.Fatal("read after disconnect succeeded")
		}
	}
	testutil.Eventually(t, "the link's goroutines to end", func() bool {
		runtime.Gosched()
		return runtime.NumGoroutine() <= before+2
	})
}

func TestPipeSemantics(t *testing.T) {
	a, b := blelink.Pipe("0a:00:00:00:00:00", "0a:00:00:00:00:01")
	if a.RemoteAddr().String() != b.LocalAddr().String() || a.RxMTU() != ble.DefaultMTU {
		t.Fatal("addresses or MTU wrong")
	}
	msg := []byte{1, 2, 3}
	a.Write(msg)
	msg[0] = 9 // the PDU was copied
	a.Write([]byte{4})
	buf := make([]byte, 8)
	if n, err := b.Read(buf); err != nil || !bytes.Equal(buf[:n], []byte{1, 2, 3}) {
		t.Fatalf("Read = %x, %v", buf[:n], err)
	}
	a.Close()
	if n, err := b.Read(buf); err != nil || n != 1 {
		t.Fatalf("PDU sent before the close: %d, %v", n, err)
	}
	if _, err := b.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after close: %v", err)
	}
	if _, err := b.Write(msg); !errors.Is(err, blelink.ErrClosed) {
		t.Fatalf("Write after close: %v", err)
	}
	<-b.Disconnected()
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	b.SetContext(ctx)
	if b.Context() != ctx {
		t.Fatal("SetContext")
	}
	c, d := blelink.Pipe("0a:00:00:00:00:00", "0a:00:00:00:00:01")
	c.Write(make([]byte, 10))
	if _, err := d.Read(make([]byte, 4)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("short read: %v", err)
	}
}

func TestAir(t *testing.T) {
	air := blelink.NewAir()
	written := make(chan []byte, 1)
	stop, err := air.Advertise(blelink.Peripheral{Addr: "0A:00:00:00:00:07", Name: "node-7", Services: []ble.UUID{svcUUID},
		Accept: func(c ble.Conn) { <-serve(t, c, testService(written)) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := air.Advertise(blelink.Peripheral{Addr: "0a:00:00:00:00:07", Accept: func(ble.Conn) {}}); err == nil {
		t.Fatal("a second peripheral at the same address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var seen []ble.Advertisement
	if err := air.Scan(ctx, false, func(a ble.Advertisement) { seen = append(seen, a) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan: %v", err)
	}
	if len(seen) != 1 || seen[0].LocalName() != "node-7" || !ble.Contains(seen[0].Services(), svcUUID) {
		t.Fatalf("scan saw %v", seen)
	}
	cli, err := air.Dial(context.Background(), seen[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.DiscoverProfile(true); err != nil {
		t.Fatal(err)
	}
	cli.CancelConnection()
	air.Wait()
	stop()
	if _, err := air.Dial(context.Background(), ble.NewAddr("0a:00:00:00:00:07")); !errors.Is(err, blelink.ErrNotFound) {
		t.Fatalf("Dial after stop: %v", err)
	}
}
