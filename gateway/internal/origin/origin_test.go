package origin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// index is the Images of a test: Add reports on added.
type index struct {
	mu    sync.Mutex
	sizes map[protocol.Digest]int64
	added chan protocol.Digest
}

func (x *index) Size(d protocol.Digest) (int64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n, ok := x.sizes[d]
	return n, ok
}

func (x *index) Add(d protocol.Digest, size int64) {
	x.mu.Lock()
	x.sizes[d] = size
	x.mu.Unlock()
	x.added <- d
}

// failing is the Store of a test: a refused image is reported on refused.
type failing struct {
	*store.DB
	refused chan error
}

func (f failing) PutModel(signed []byte, image io.Reader, trust store.Verifier) (*store.Model, error) {
	m, err := f.DB.PutModel(signed, image, trust)
	if err != nil {
		f.refused <- err
	}
	return m, err
}

// TestFetchResumes: a partial download left in the part file is resumed
// with a Range request, or started over when the origin ignores the
// Range; either way the image stored is the whole image and the part file
// is gone.
func TestFetchResumes(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, 32))
	signer, _ := sign.NewSigner(priv)
	trust, err := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 100_000)
	for i := range img {
		img[i] = byte(i * 7)
	}
	const have = 40_000 // bytes already in the part file
	m := &protocol.Manifest{Format: 1, Seq: 1, Component: "kws", Version: "1.0", Digest: sha256.Sum256(img),
		Size: uint64(len(img)), Class: protocol.Class{1}, Epoch: 1}
	signed, err := signer.SignManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		honour    bool   // the origin answers Range with 206
		wantRange string // the Range header the fetch sent
	}{
		{"origin honours Range", true, "bytes=40000-"},
		{"origin ignores Range", false, "bytes=40000-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var gotRange string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				gotRange = r.Header.Get("Range")
				mu.Unlock()
				if tc.honour {
					http.ServeContent(w, r, "model.bin", time.Time{}, bytes.NewReader(img))
					return
				}
				w.Write(img)
			}))
			defer srv.Close()
			dir := t.TempDir()
			db, err := store.Open(filepath.Join(dir, "gateway.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			part := filepath.Join(dir, "origin", m.Digest.String()+".part")
			os.MkdirAll(filepath.Dir(part), 0o700)
			if err := os.WriteFile(part, img[:have], 0o600); err != nil {
				t.Fatal(err)
			}
			x := &index{sizes: map[protocol.Digest]int64{}, added: make(chan protocol.Digest, 1)}
			st := failing{db, make(chan error, 1)}
			f := New(Config{Dir: filepath.Dir(part), Trust: trust, Store: st, Images: x})
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() { f.Run(ctx); close(ran) }()
			stop := func() { cancel(); <-ran } // Run returns once its fetches ended

			if _, err := f.Fetch(signed, srv.URL); err != nil {
				t.Fatal(err)
			}
			select {
			case <-x.added:
			case err := <-st.refused:
				stop()
				t.Fatalf("image refused: %v", err)
			}
			stop()
			mu.Lock()
			defer mu.Unlock()
			if gotRange != tc.wantRange {
				t.Errorf("Range %q, want %q", gotRange, tc.wantRange)
			}
			got := make([]byte, len(img))
			if _, err := db.ReadAt(m.Digest, got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatal("stored image differs")
			}
			if _, err := os.Stat(part); !os.IsNotExist(err) {
				t.Fatalf("part file left: %v", err)
			}
			if f.Fetching(m.Digest) {
				t.Fatal("still fetching after the image was stored")
			}
		})
	}
}

// TestFetchAfterRunFails: once Run returned, Fetch says so and leaves
// nothing marked as being fetched.
func TestFetchAfterRunFails(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, 32))
	signer, _ := sign.NewSigner(priv)
	trust, _ := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	m := &protocol.Manifest{Format: 1, Seq: 1, Component: "kws", Version: "1.0", Digest: protocol.Digest{9}, Size: 10,
		Class: protocol.Class{1}, Epoch: 1}
	signed, _ := signer.SignManifest(m)
	f := New(Config{Dir: t.TempDir(), Trust: trust, Images: &index{sizes: map[protocol.Digest]int64{}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Run(ctx)
	if _, err := f.Fetch(signed, "http://127.0.0.1:1/"); err != ErrStopped {
		t.Fatalf("Fetch after Run: %v, want ErrStopped", err)
	}
	if f.Fetching(m.Digest) {
		t.Fatal("a refused fetch is marked as fetching")
	}
}
