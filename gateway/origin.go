package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"edgeota/protocol"
)

// origins fetches images from HTTP(S) origins into the cache: with Range
// requests that resume a partial download (kept in DataDir/origin across
// restarts), verified by the store before anything is cached. While an
// image is being fetched, its CoAP resource answers 5.03 with Max-Age.
type origins struct {
	mu      sync.Mutex
	active  map[protocol.Digest]bool
	client  *http.Client
	wg      sync.WaitGroup
	maxWait time.Duration
}

// fetching reports whether d is being fetched from an origin.
func (g *Gateway) fetching(d protocol.Digest) bool {
	g.origin.mu.Lock()
	defer g.origin.mu.Unlock()
	return g.origin.active[d]
}

// FetchModel starts fetching the image of a signed manifest from url in
// the background (no-op when it is cached or already being fetched). The
// manifest is verified first; the image is stored only when its size and
// digest match.
func (g *Gateway) FetchModel(ctx context.Context, signed []byte, url string) (*protocol.Manifest, error) {
	m, err := g.trust.VerifyManifest(signed)
	if err != nil {
		return nil, err
	}
	if _, ok := g.index.get(m.Digest); ok {
		return m, nil
	}
	g.origin.mu.Lock()
	if g.origin.active[m.Digest] {
		g.origin.mu.Unlock()
		return m, nil
	}
	g.origin.active[m.Digest] = true
	g.origin.mu.Unlock()
	g.origin.wg.Add(1)
	go func() {
		defer g.origin.wg.Done()
		defer func() {
			g.origin.mu.Lock()
			delete(g.origin.active, m.Digest)
			g.origin.mu.Unlock()
		}()
		op := func() (struct{}, error) {
			err := g.fetchOnce(ctx, m, signed, url)
			var perm *backoff.PermanentError
			if err != nil && !errors.As(err, &perm) {
				g.log.Warn("origin fetch failed; retrying", "url", url, "digest", m.Digest.String(), "err", err)
			}
			return struct{}{}, err
		}
		_, err := backoff.Retry(ctx, op, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(g.origin.maxWait))
		if err != nil {
			g.log.Error("origin fetch abandoned", "url", url, "digest", m.Digest.String(), "err", err)
		}
	}()
	return m, nil
}

// fetchOnce downloads the rest of the image into its part file, then
// stores it.
func (g *Gateway) fetchOnce(ctx context.Context, m *protocol.Manifest, signed []byte, url string) error {
	dir := filepath.Join(g.cfg.DataDir, "origin")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return backoff.Permanent(err)
	}
	part := filepath.Join(dir, m.Digest.String()+".part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return backoff.Permanent(err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > int64(m.Size) {
		if err := f.Truncate(0); err != nil {
			return err
		}
		have = 0
	}
	if have < int64(m.Size) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return backoff.Permanent(err)
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := g.origin.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusPartialContent:
		case http.StatusOK:
			if have > 0 { // the origin ignored the Range: start over
				if err := f.Truncate(0); err != nil {
					return err
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return err
				}
			}
		case http.StatusNotFound, http.StatusForbidden, http.StatusUnauthorized, http.StatusGone:
			return backoff.Permanent(fmt.Errorf("origin answered %s", resp.Status))
		default:
			return fmt.Errorf("origin answered %s", resp.Status)
		}
		if _, err := io.Copy(f, io.LimitReader(resp.Body, int64(m.Size)+1)); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	stored, err := g.store.PutModel(signed, f, g.trust)
	if err != nil {
		os.Remove(part) // a wrong image is not resumed
		return backoff.Permanent(err)
	}
	os.Remove(part)
	g.index.set(stored.Digest, stored.Size)
	g.log.Info("model fetched from origin", "url", url, "digest", stored.Digest.String(), "bytes", stored.Size)
	return nil
}
