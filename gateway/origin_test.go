package gateway_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
	"edgeota/test/testutil"
)

// flakyOrigin is an HTTP origin of one image whose first answer breaks off
// after dropAt bytes of the body (the connection closes under a
// Content-Length that promised more). What it answers after that depends
// on the case. It records the Range header of every request.
type flakyOrigin struct {
	image  []byte
	dropAt int
	// ignoreRange answers a Range request 200 with the whole image, as an
	// origin without range support does.
	ignoreRange bool
	// corrupt serves the resumed part with one byte flipped.
	corrupt bool

	mu     sync.Mutex
	ranges []string // the Range header of each request, "" for none
}

func (o *flakyOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	first := len(o.ranges) == 0
	o.ranges = append(o.ranges, r.Header.Get("Range"))
	o.mu.Unlock()
	if first {
		w.Header().Set("Content-Length", strconv.Itoa(len(o.image)))
		w.WriteHeader(http.StatusOK)
		w.Write(o.image[:o.dropAt])
		conn, _, err := http.NewResponseController(w).Hijack() // flushes what was written
		if err == nil {
			conn.Close()
		}
		return
	}
	body := o.image
	if o.corrupt {
		body = bytes.Clone(o.image)
		body[len(body)-1] ^= 0x01
	}
	if o.ignoreRange {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body)) // 206 with Content-Range to a Range request
}

func (o *flakyOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ranges...)
}

// TestOriginFetchResumes: a model fetched from an origin (POST
// /v1/models/fetch) whose connection drops mid-body is fetched again with
// a Range request from the byte where it stopped; the gateway serves the
// image once its digest verifies (5.03 until then). An origin that ignores
// the Range (200, the whole image) is read from the start, not appended;
// resumed bytes that do not match the manifest's digest are not served.
func TestOriginFetchResumes(t *testing.T) {
	const size, dropAt = 100_000, 40_000
	tests := []struct {
		name        string
		ignoreRange bool
		corrupt     bool
		served      bool
	}{
		{name: "origin answers 206", served: true},
		{name: "origin ignores the Range", ignoreRange: true, served: true},
		{name: "resumed bytes do not match the digest", corrupt: true, served: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, opts{})
			md := e.model(uint64(i+1), size)
			o := &flakyOrigin{image: md.image, dropAt: dropAt, ignoreRange: tt.ignoreRange, corrupt: tt.corrupt}
			srv := httptest.NewServer(o)
			t.Cleanup(srv.Close)
			if _, err := e.api.FetchModel(ctxT(t), md.signed, srv.URL+"/kws.bin"); err != nil {
				t.Fatalf("fetch from the origin: %v", err)
			}
			c := e.dial()
			code := waitFetched(t, c, md.m.Digest)
			if got := o.requests(); len(got) != 2 || got[0] != "" || got[1] != "bytes="+strconv.Itoa(dropAt)+"-" {
				t.Errorf("requests' Range headers %q, want none, then bytes=%d-", got, dropAt)
			}
			if !tt.served {
				if code != codes.NotFound {
					t.Fatalf("the image with a wrong digest answers %v, want 4.04", code)
				}
				return
			}
			if code != codes.Content {
				t.Fatalf("the fetched image answers %v, want 2.05", code)
			}
			if got := fetch(t, c, md.m.Digest, 1024); !bytes.Equal(got, md.image) {
				t.Fatalf("served %d bytes that differ from the origin's image", len(got))
			}
		})
	}
}

// waitFetched asks for block 0 of image d until the gateway stops answering
// 5.03 (fetching from the origin) and returns what it answers then: 2.05
// once stored, 4.04 when the fetch gave up.
func waitFetched(t *testing.T, c *udpClient.Conn, d protocol.Digest) codes.Code {
	t.Helper()
	var code codes.Code
	testutil.Eventually(t, "the gateway to end its fetch from the origin", func() bool {
		req, err := c.NewGetRequest(ctxT(t), protocol.ImagePath(d))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, 0, false)
		req.SetOptionUint32(message.Block2, v)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		code = resp.Code()
		return code != codes.ServiceUnavailable
	}, testutil.Every(20*time.Millisecond))
	return code
}
