package provisioning

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-ble/ble"

	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
)

// Config configures a provisioning [Service]. NodeID, FactorySecret,
// FactoryKeys and Store are required.
type Config struct {
	// NodeID is the node's factory identity; a bundle must name it.
	NodeID string
	// Class is the node's device class, readable over GATT.
	Class protocol.Class
	// Component is what the component characteristic reads before the
	// node is provisioned (empty: nothing); afterwards it reads the
	// committed one.
	Component string
	// AgentVersion is the node agent's version, readable over GATT.
	AgentVersion string
	// RunningVersion returns the version of the running model, "" when
	// none runs; nil reads "".
	RunningVersion func() string

	// FactorySecret is the node's factory secret, 16 to 64 bytes: it
	// opens the PSK of a bundle and never leaves the node.
	FactorySecret []byte
	// FactoryKeys are the operator keys the node was manufactured to
	// trust: a never-provisioned node accepts a bundle signed by any of
	// them. A provisioned node accepts only its committed operator keys.
	FactoryKeys []ed25519.PublicKey
	// Store keeps the committed configuration.
	Store Store

	// OnCommit, when set, is called with the new configuration after it
	// is durably saved, from the connection's goroutine: it should hand
	// it over (restart the agent) and return promptly.
	OnCommit func(NodeConfig)
	// Now is the clock of CommittedAt (default time.Now).
	Now func() time.Time
	// Logger receives what the service does (default: discard). Secrets
	// are never logged.
	Logger *slog.Logger
}

// Service is a node's provisioning service: the state machine behind the
// GATT characteristics. It is safe for concurrent use by several
// connections; each connection has its own transfer.
type Service struct {
	cfg      Config
	log      *slog.Logger
	fallback *session // for connections not served by ServeConn

	mu          sync.Mutex // serializes commits
	cur         NodeConfig
	provisioned bool
}

// New loads the node's configuration from cfg.Store and returns the
// service. It does not mutate cfg.
func New(cfg Config) (*Service, error) {
	if !protocol.ValidID(cfg.NodeID) {
		return nil, fmt.Errorf("provisioning: node id %q does not match [A-Za-z0-9._-]{1,64}", cfg.NodeID)
	}
	if n := len(cfg.FactorySecret); n < provision.MinFactorySecretLen || n > provision.MaxFactorySecretLen {
		return nil, fmt.Errorf("provisioning: factory secret of %d bytes, want %d to %d", n, provision.MinFactorySecretLen, provision.MaxFactorySecretLen)
	}
	if len(cfg.FactoryKeys) == 0 {
		return nil, errors.New("provisioning: at least one factory operator key is required")
	}
	if _, err := sign.NewTrustStore(sign.RoleOperator, cfg.FactoryKeys...); err != nil {
		return nil, fmt.Errorf("provisioning: factory keys: %w", err)
	}
	if cfg.Store == nil {
		return nil, errors.New("provisioning: Store is required")
	}
	cfg.FactorySecret = slices.Clone(cfg.FactorySecret)
	cfg.FactoryKeys = cloneKeys(cfg.FactoryKeys)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RunningVersion == nil {
		cfg.RunningVersion = func() string { return "" }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, fallback: newSession()}
	cur, ok, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	if ok && cur.NodeID != cfg.NodeID {
		return nil, fmt.Errorf("%w: it is for node %q, this is node %q", ErrCorrupt, cur.NodeID, cfg.NodeID)
	}
	s.cur, s.provisioned = cur, ok
	return s, nil
}

// Current returns the committed configuration, or ok false on a node never
// provisioned.
func (s *Service) Current() (cfg NodeConfig, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.provisioned {
		return NodeConfig{}, false
	}
	return s.cur.clone(), true
}

// session is the provisioning state of one connection.
type session struct {
	mu     sync.Mutex
	total  uint16 // chunks of the transfer; 0 when none is under way
	next   uint16 // index of the next chunk
	size   int    // data bytes of every chunk but the last
	buf    []byte
	staged []byte // a complete signed bundle that verified, awaiting commit
	status provision.Status
	notes  chan []byte // status values to notify, drained by the notify handler
}

func newSession() *session { return &session{notes: make(chan []byte, 16)} }

func (ss *session) reset() {
	ss.total, ss.next, ss.size, ss.buf, ss.staged = 0, 0, 0, nil, nil
}

// setStatus records st and queues it for notification (dropping the
// oldest queued value when the central does not drain them). Call with
// ss.mu held.
func (ss *session) setStatus(st provision.Status) {
	ss.status = st
	v, _ := st.MarshalBinary()
	for {
		select {
		case ss.notes <- v:
			return
		default:
		}
		select {
		case <-ss.notes:
		default:
		}
	}
}

type sessionKey struct{}

func (s *Service) sessionOf(req ble.Request) *session {
	if c := req.Conn(); c != nil {
		if ss, ok := c.Context().Value(sessionKey{}).(*session); ok {
			return ss
		}
	}
	return s.fallback
}

// attError is an ATT error code the handlers answer with.
type attError = ble.ATTError

// writeChunk takes one chunk of the bundle characteristic.
func (s *Service) writeChunk(ss *session, v []byte) attError {
	idx, total, data, err := provision.ParseChunk(v)
	if err != nil {
		return ble.ErrInvalAttrValueLen
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case ss.staged != nil:
		return attError(provision.ATTOutOfOrder) // commit or abort first
	case ss.total == 0:
		if idx != 0 {
			return attError(provision.ATTOutOfOrder)
		}
		if int(total) > provision.MaxSize || (total > 1 && (int(total)-1)*len(data) >= provision.MaxSize) {
			return ble.ErrInvalAttrValueLen
		}
	case idx != ss.next || total != ss.total:
		return attError(provision.ATTOutOfOrder)
	case len(data) > ss.size || (idx < total-1 && len(data) != ss.size):
		return ble.ErrInvalAttrValueLen
	}
	if len(ss.buf)+len(data) > provision.MaxSize {
		return ble.ErrInvalAttrValueLen
	}
	if idx == 0 {
		ss.total, ss.size = total, len(data)
		ss.setStatus(provision.Status{State: provision.StateReceiving})
	}
	ss.buf = append(ss.buf, data...)
	ss.next++
	if ss.next < ss.total {
		return ble.ErrSuccess
	}
	signed := ss.buf
	ss.reset()
	s.mu.Lock()
	_, st := s.check(signed)
	s.mu.Unlock()
	ss.setStatus(st)
	if st.State != provision.StateAccepted {
		s.log.Warn("provisioning bundle refused", "reason", st.Reason.String(), "detail", st.Text)
		return attError(provision.ATTRejected)
	}
	ss.staged = signed
	s.log.Info("provisioning bundle accepted; waiting for commit")
	return ble.ErrSuccess
}

// check verifies a signed bundle against the node's current state. Call
// with s.mu held.
func (s *Service) check(signed []byte) (NodeConfig, provision.Status) {
	reject := func(r provision.Reason, text string) (NodeConfig, provision.Status) {
		return NodeConfig{}, provision.Status{State: provision.StateRejected, Reason: r, Text: text}
	}
	keys := s.cfg.FactoryKeys
	if s.provisioned {
		keys = s.cur.OperatorKeys
	}
	trust, err := sign.NewTrustStore(sign.RoleOperator, keys...)
	if err != nil {
		return reject(provision.ReasonInvalid, "bad trust anchors")
	}
	b, kid, err := provision.Verify(signed, trust)
	switch {
	case err == nil:
	case errors.Is(err, sign.ErrUnknownKey):
		return reject(provision.ReasonUntrusted, "key not trusted")
	case errors.Is(err, sign.ErrSignature):
		return reject(provision.ReasonSignature, "bad signature")
	case errors.Is(err, protocol.ErrInvalid):
		return reject(provision.ReasonInvalid, "invalid bundle")
	default:
		return reject(provision.ReasonMalformed, "malformed bundle")
	}
	if b.NodeID != s.cfg.NodeID {
		return reject(provision.ReasonNodeID, "other node id")
	}
	if s.provisioned && b.Serial <= s.cur.Serial {
		return reject(provision.ReasonReplay, "serial replayed")
	}
	psk, err := b.OpenPSK(s.cfg.FactorySecret)
	if err != nil {
		return reject(provision.ReasonSeal, "psk does not open")
	}
	return NodeConfig{
		NodeID: b.NodeID, Serial: b.Serial, Issued: b.Issued, Labels: b.Labels, Component: b.Component,
		Gateway: b.Gateway, ManifestKeys: b.ManifestKeys, OperatorKeys: b.OperatorKeys, RootKeys: b.RootKeys, RootThreshold: b.RootThreshold,
		PSK: psk, Signer: kid.String(),
	}, provision.Status{State: provision.StateAccepted}
}

// control takes a write to the control characteristic.
func (s *Service) control(ss *session, v []byte) attError {
	if len(v) != 1 {
		return ble.ErrInvalAttrValueLen
	}
	switch v[0] {
	case provision.ControlAbort:
		ss.mu.Lock()
		ss.reset()
		ss.setStatus(provision.Status{State: provision.StateIdle, Reason: provision.ReasonAborted, Text: "aborted"})
		ss.mu.Unlock()
		return ble.ErrSuccess
	case provision.ControlCommit:
		return s.commit(ss)
	}
	return attError(provision.ATTUnknownOp)
}

// commit applies the session's accepted bundle: it checks it again under
// the service lock (another connection may have committed since), saves
// it, and only then makes it current and calls OnCommit.
func (s *Service) commit(ss *session) attError {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.staged == nil {
		return attError(provision.ATTNothingToCommit)
	}
	s.mu.Lock()
	cfg, st := s.check(ss.staged)
	if st.State != provision.StateAccepted {
		s.mu.Unlock()
		ss.reset()
		ss.setStatus(st)
		return attError(provision.ATTRejected)
	}
	cfg.CommittedAt = s.cfg.Now().Unix()
	if err := s.cfg.Store.Save(cfg); err != nil {
		s.mu.Unlock()
		s.log.Error("provisioning: saving the configuration failed; the old one stays in force", "err", err)
		ss.setStatus(provision.Status{State: provision.StateRejected, Reason: provision.ReasonStore, Text: "store failed"})
		return attError(provision.ATTStoreFailed)
	}
	s.cur, s.provisioned = cfg, true
	s.mu.Unlock()
	ss.reset()
	ss.setStatus(provision.Status{State: provision.StateCommitted})
	s.log.Info("provisioned", "config", cfg)
	if s.cfg.OnCommit != nil {
		s.cfg.OnCommit(cfg.clone())
	}
	return ble.ErrSuccess
}

// serial returns the committed serial, 0 on a fresh node.
func (s *Service) serial() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Serial
}

func (s *Service) component() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provisioned {
		return s.cur.Component
	}
	return s.cfg.Component
}

// readValue serves a read of value, honouring the offset of a Read Blob
// and the response's capacity: go-ble leaves both to the handler, and
// sends nothing when a handler writes more than the capacity.
func readValue(value func(ble.Request) []byte) ble.ReadHandler {
	return ble.ReadHandlerFunc(func(req ble.Request, rsp ble.ResponseWriter) {
		v := value(req)
		off := req.Offset()
		if off > len(v) {
			rsp.SetStatus(ble.ErrInvalidOffset)
			return
		}
		v = v[off:]
		rsp.Write(v[:min(len(v), rsp.Cap()-rsp.Len())])
	})
}

// GATT builds the provisioning service for go-ble's GATT server. Build a
// new one for each server: go-ble records attribute handles in it.
// Connections served by [Service.ServeConn] or [Service.Serve] each
// have their own transfer; connections of another server (the service
// added to a linux.Device, say) share one, and miss the guard against the
// requests that crash go-ble's server.
func (s *Service) GATT() *ble.Service {
	svc := ble.NewService(ble.MustParse(provision.ServiceUUID))
	static := func(u string, v func() []byte) {
		svc.NewCharacteristic(ble.MustParse(u)).HandleRead(readValue(func(ble.Request) []byte { return v() }))
	}
	static(provision.NodeIDUUID, func() []byte { return []byte(s.cfg.NodeID) })
	static(provision.ClassUUID, func() []byte { return s.cfg.Class[:] })
	static(provision.ComponentUUID, func() []byte { return []byte(s.component()) })
	static(provision.RunningVersionUUID, func() []byte { return []byte(s.cfg.RunningVersion()) })
	static(provision.AgentVersionUUID, func() []byte { return []byte(s.cfg.AgentVersion) })
	static(provision.SerialUUID, func() []byte { return binary.BigEndian.AppendUint64(nil, s.serial()) })
	svc.NewCharacteristic(ble.MustParse(provision.BundleUUID)).HandleWrite(ble.WriteHandlerFunc(func(req ble.Request, rsp ble.ResponseWriter) {
		rsp.SetStatus(s.writeChunk(s.sessionOf(req), req.Data()))
	}))
	svc.NewCharacteristic(ble.MustParse(provision.ControlUUID)).HandleWrite(ble.WriteHandlerFunc(func(req ble.Request, rsp ble.ResponseWriter) {
		rsp.SetStatus(s.control(s.sessionOf(req), req.Data()))
	}))
	st := svc.NewCharacteristic(ble.MustParse(provision.StatusUUID))
	st.HandleRead(readValue(func(req ble.Request) []byte {
		ss := s.sessionOf(req)
		ss.mu.Lock()
		defer ss.mu.Unlock()
		v, _ := ss.status.MarshalBinary()
		return v
	}))
	st.HandleNotify(ble.NotifyHandlerFunc(func(req ble.Request, n ble.Notifier) {
		ss := s.sessionOf(req)
		for {
			select {
			case <-n.Context().Done():
				return
			case v := <-ss.notes:
				if _, err := n.Write(v); err != nil {
					return
				}
			}
		}
	}))
	return svc
}

// withSession returns ctx carrying a new session, for ServeConn.
func withSession(ctx context.Context) context.Context {
	return context.WithValue(ctx, sessionKey{}, newSession())
}
