// Package origin fetches images from HTTP(S) origins into the gateway's
// cache: with Range requests that resume a partial download (a part file
// kept across restarts), retried with exponential back-off, and verified by
// the store before anything is cached. While an image is being fetched, its
// CoAP resource answers 5.03 with Max-Age (docs/protocol.md section 5).
//
// Fetches run while [Fetcher.Run] runs, and end with its context.
package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// ErrStopped is returned by [Fetcher.Fetch] when the fetcher is not
// running.
var ErrStopped = errors.New("origin: the gateway is stopping")

// Store verifies and stores an image: the gateway's database.
type Store interface {
	PutModel(signed []byte, image io.Reader, trust store.Verifier) (*store.Model, error)
}

// Images is the index of cached images the fetcher checks and adds to.
type Images interface {
	Size(d protocol.Digest) (int64, bool)
	Add(d protocol.Digest, size int64)
}

// Config configures a Fetcher.
type Config struct {
	// Dir keeps the partial downloads.
	Dir string
	// Trust verifies manifests (the gateway's keyring).
	Trust store.Verifier
	// Store and Images receive a fetched image.
	Store  Store
	Images Images
	// Client makes the requests (default: one with a 30 minute timeout).
	Client *http.Client
	// MaxWait is how long a fetch is retried (default 24h).
	MaxWait time.Duration
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
}

// Fetcher fetches images in the background.
type Fetcher struct {
	cfg   Config
	log   *slog.Logger
	reqs  chan request
	ended chan struct{} // closed when Run returns

	mu     sync.Mutex
	active map[protocol.Digest]bool
}

type request struct {
	m      *protocol.Manifest
	signed []byte
	url    string
}

// New returns a fetcher; [Fetcher.Run] runs its fetches.
func New(cfg Config) *Fetcher {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Minute}
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{cfg: cfg, log: cfg.Logger, reqs: make(chan request), ended: make(chan struct{}),
		active: map[protocol.Digest]bool{}}
}

// Run starts the fetches asked of [Fetcher.Fetch] until ctx ends, then
// waits for them to stop.
func (f *Fetcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		close(f.ended)
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-f.reqs:
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.fetch(ctx, r)
			}()
		}
	}
}

// Fetching reports whether d is being fetched.
func (f *Fetcher) Fetching(d protocol.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active[d]
}

// Fetch starts fetching the image of a signed manifest from url in the
// background (nothing to do when it is cached or already being fetched),
// and returns the manifest. The manifest is verified first; the image is
// stored only when its size and digest match. It fails with [ErrStopped]
// once Run has returned.
func (f *Fetcher) Fetch(signed []byte, url string) (*protocol.Manifest, error) {
	m, err := f.cfg.Trust.VerifyManifest(signed)
	if err != nil {
		return nil, err
	}
	if _, ok := f.cfg.Images.Size(m.Digest); ok {
		return m, nil
	}
	f.mu.Lock()
	if f.active[m.Digest] {
		f.mu.Unlock()
		return m, nil
	}
	f.active[m.Digest] = true
	f.mu.Unlock()
	select {
	case f.reqs <- request{m: m, signed: signed, url: url}:
		return m, nil
	case <-f.ended:
		f.done(m.Digest)
		return nil, ErrStopped
	}
}

func (f *Fetcher) done(d protocol.Digest) {
	f.mu.Lock()
	delete(f.active, d)
	f.mu.Unlock()
}

// fetch retries fetchOnce until it succeeds, fails for good, or ctx ends.
func (f *Fetcher) fetch(ctx context.Context, r request) {
	defer f.done(r.m.Digest)
	op := func() (struct{}, error) {
		err := f.fetchOnce(ctx, r)
		var perm *backoff.PermanentError
		if err != nil && !errors.As(err, &perm) {
			f.log.Warn("origin fetch failed; retrying", "url", r.url, "digest", r.m.Digest.String(), "err", err)
		}
		return struct{}{}, err
	}
	_, err := backoff.Retry(ctx, op, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(f.cfg.MaxWait))
	if err != nil {
		f.log.Error("origin fetch abandoned", "url", r.url, "digest", r.m.Digest.String(), "err", err)
	}
}

// fetchOnce downloads the rest of the image into its part file, then
// stores it.
func (f *Fetcher) fetchOnce(ctx context.Context, r request) error {
	m := r.m
	if err := os.MkdirAll(f.cfg.Dir, 0o700); err != nil {
		return backoff.Permanent(err)
	}
	part := filepath.Join(f.cfg.Dir, m.Digest.String()+".part")
	file, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return backoff.Permanent(err)
	}
	defer file.Close()
	have, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > int64(m.Size) {
		if err := file.Truncate(0); err != nil {
			return err
		}
		have = 0
	}
	if have < int64(m.Size) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
		if err != nil {
			return backoff.Permanent(err)
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := f.cfg.Client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusPartialContent:
		case http.StatusOK:
			if have > 0 { // the origin ignored the Range: start over
				if err := file.Truncate(0); err != nil {
					return err
				}
				if _, err := file.Seek(0, io.SeekStart); err != nil {
					return err
				}
			}
		case http.StatusNotFound, http.StatusForbidden, http.StatusUnauthorized, http.StatusGone:
			return backoff.Permanent(fmt.Errorf("origin answered %s", resp.Status))
		default:
			return fmt.Errorf("origin answered %s", resp.Status)
		}
		if _, err := io.Copy(file, io.LimitReader(resp.Body, int64(m.Size)+1)); err != nil {
			return err
		}
		if err := file.Sync(); err != nil {
			return err
		}
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	stored, err := f.cfg.Store.PutModel(r.signed, file, f.cfg.Trust)
	if err != nil {
		os.Remove(part) // a wrong image is not resumed
		return backoff.Permanent(err)
	}
	os.Remove(part)
	f.cfg.Images.Add(stored.Digest, stored.Size)
	f.log.Info("model fetched from origin", "url", r.url, "digest", stored.Digest.String(), "bytes", stored.Size)
	return nil
}
