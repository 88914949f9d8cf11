package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// Option configures a Service.
type Option func(*Service)

// WithCheckTimeout sets how long CheckConfig waits for a handler
// (DefaultCheckTimeout if d <= 0).
func WithCheckTimeout(d time.Duration) Option {
	return func(s *Service) { s.SetCheckTimeout(d) }
}

// SetCheckTimeout changes how long CheckConfig waits for a handler, for
// checks that start afterwards (check_config_timeout reloaded). d <= 0
// means DefaultCheckTimeout.
func (s *Service) SetCheckTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultCheckTimeout
	}
	s.checkTimeout.Store(int64(d))
}

// WithStatus exports org.kernel.TCMUService1.Gotcmu1.Status on RootPath,
// answered from src. Without it the interface is not exported.
func WithStatus(src StatusSource) Option {
	return func(s *Service) { s.status = src }
}

// Service is gotcmu's org.kernel.TCMUService1. Make one with New, then run
// Serve; Close withdraws it.
type Service struct {
	conn         *dbus.Conn
	log          zerolog.Logger
	checkTimeout atomic.Int64 // a time.Duration
	status       StatusSource

	// ctx ends when the Service is closed; checks in progress see it.
	ctx    context.Context
	cancel context.CancelFunc
	// checks holds one token per CheckConfig in progress.
	checks chan struct{}

	mu       sync.Mutex // guards the fields below
	builtin  map[string]*builtinHandler
	external map[string]*externalHandler
	exported []exportedIface
	closed   bool
}

type exportedIface struct {
	path  dbus.ObjectPath
	iface string
}

// New exports org.kernel.TCMUService1's objects on conn for handlers; it
// does not request the bus name (Serve does, once everything is in place,
// so that a client seeing the name finds every object). conn stays the
// caller's: Close does not close it.
func New(conn *dbus.Conn, handlers []handler.Handler, log zerolog.Logger, opts ...Option) (*Service, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		conn:     conn,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		checks:   make(chan struct{}, maxConcurrentChecks),
		builtin:  make(map[string]*builtinHandler),
		external: make(map[string]*externalHandler),
	}
	s.SetCheckTimeout(DefaultCheckTimeout)
	for _, o := range opts {
		o(s)
	}
	for _, h := range handlers {
		if err := checkSubtype(h.Subtype); err != nil {
			cancel()
			return nil, fmt.Errorf("add handler: %w", err)
		}
		if s.builtin[h.Subtype] != nil {
			cancel()
			return nil, fmt.Errorf("add handler %q: subtype given twice", h.Subtype)
		}
		if h.CheckConfig == nil {
			cancel()
			return nil, fmt.Errorf("add handler %q: no CheckConfig", h.Subtype)
		}
		s.builtin[h.Subtype] = &builtinHandler{s: s, h: h}
	}
	if err := s.exportAll(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Service) exportAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	root := map[string]any{"GetManagedObjects": s.getManagedObjects}
	if err := s.export(root, RootPath, objectManagerInterface); err != nil {
		return err
	}
	if s.status != nil {
		if err := s.export(map[string]any{"Status": s.statusMethod}, RootPath, StatusInterface); err != nil {
			return err
		}
	}
	if err := s.export(introspector(s.rootNode).methods(), RootPath, introspectInterface); err != nil {
		return err
	}
	manager := map[string]any{"RegisterHandler": s.registerHandler}
	if err := s.export(manager, ManagerPath, ManagerInterface); err != nil {
		return err
	}
	if err := s.export(introspector(managerNode).methods(), ManagerPath, introspectInterface); err != nil {
		return err
	}
	for _, b := range s.builtin {
		if err := s.exportHandler(b.subtype(), b.configDesc(), b.checkConfig); err != nil {
			return err
		}
	}
	return nil
}

// export exports a method table and remembers it for Close. s.mu is held.
func (s *Service) export(methods map[string]any, path dbus.ObjectPath, iface string) error {
	if err := s.conn.ExportMethodTable(methods, path, iface); err != nil {
		return fmt.Errorf("export %s on %s: %w", iface, path, err)
	}
	s.exported = append(s.exported, exportedIface{path, iface})
	return nil
}

// exportHandler exports the object of one handler. s.mu is held.
func (s *Service) exportHandler(subtype, desc string, check func(dbus.Message, string) (bool, string, *dbus.Error)) error {
	path := handlerPath(subtype)
	props := handlerProps(desc)
	if err := s.export(map[string]any{"CheckConfig": check}, path, HandlerInterface); err != nil {
		return err
	}
	if err := s.export(props.methods(), path, propertiesInterface); err != nil {
		return err
	}
	return s.export(introspector(handlerNode).methods(), path, introspectInterface)
}

// unexportHandler withdraws what exportHandler exported. s.mu is held.
func (s *Service) unexportHandler(subtype string) {
	path := handlerPath(subtype)
	kept := s.exported[:0]
	for _, e := range s.exported {
		if e.path != path {
			kept = append(kept, e)
			continue
		}
		if err := s.conn.Export(nil, e.path, e.iface); err != nil {
			s.log.Warn().Err(err).Str("path", string(e.path)).Msg("unexport handler object")
		}
	}
	s.exported = kept
}

// Serve requests the bus name, then follows the bus daemon's
// NameOwnerChanged signals to drop external handlers whose name vanished,
// until ctx ends (nil), the connection closes or the name is lost. It
// fails at once if another process owns the name (tcmu-runner, another
// gotcmu). It releases the name when it returns.
func (s *Service) Serve(ctx context.Context) error {
	sigs := make(chan *dbus.Signal, 64)
	s.conn.Signal(sigs)
	defer s.conn.RemoveSignal(sigs)
	watch := []dbus.MatchOption{
		dbus.WithMatchSender(busDaemonName),
		dbus.WithMatchInterface(busDaemonName),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg0Namespace(ManagerInterface),
	}
	if err := s.conn.AddMatchSignalContext(ctx, watch...); err != nil {
		return fmt.Errorf("watch external handler names: %w", err)
	}
	defer func() {
		if err := s.conn.RemoveMatchSignal(watch...); err != nil && !errors.Is(err, dbus.ErrClosed) {
			s.log.Debug().Err(err).Msg("remove name owner match")
		}
	}()

	reply, err := s.conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request name %s: %w", BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner {
		owner, _ := s.ownerOf(ctx, BusName)
		return fmt.Errorf("request name %s: owned by %q (is tcmu-runner or another gotcmu running?)", BusName, owner)
	}
	defer func() {
		if _, err := s.conn.ReleaseName(BusName); err != nil && !errors.Is(err, dbus.ErrClosed) {
			s.log.Warn().Err(err).Msg("release bus name")
		}
	}()
	s.log.Info().Str("name", BusName).Msg("serving on d-bus")
	// An external handler may have registered and vanished between our
	// export and the match rule taking effect; look once more.
	s.recheckExternal(ctx)

	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-sigs:
			if !ok {
				return fmt.Errorf("serve %s: connection closed", BusName)
			}
			if err := s.handleSignal(ctx, sig); err != nil {
				return err
			}
		}
	}
}

func (s *Service) handleSignal(ctx context.Context, sig *dbus.Signal) error {
	// Only the bus daemon can send as org.freedesktop.DBus.
	if sig.Sender != busDaemonName || sig.Path != busDaemonPath {
		return nil
	}
	switch sig.Name {
	case busDaemonName + ".NameLost":
		if firstString(sig.Body) == BusName {
			return fmt.Errorf("serve %s: name lost", BusName)
		}
	case busDaemonName + ".NameOwnerChanged":
		// The signal only says something changed: ask who owns each
		// name now, so signals handled out of order cannot mislead.
		if strings.HasPrefix(firstString(sig.Body), ExternalBusPrefix) {
			s.recheckExternal(ctx)
		}
	}
	return nil
}

// firstString returns a signal's first argument if it is a string.
func firstString(body []any) string {
	if len(body) == 0 {
		return ""
	}
	v, _ := body[0].(string)
	return v
}

// ownerOf returns the unique name owning name, or "" if nobody owns it.
func (s *Service) ownerOf(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, busCallTimeout)
	defer cancel()
	var owner string
	err := s.conn.BusObject().CallWithContext(ctx, busDaemonName+".GetNameOwner", 0, name).Store(&owner)
	var derr dbus.Error
	if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get owner of %s: %w", name, err)
	}
	return owner, nil
}

// Close withdraws every exported object and ends checks in progress. It
// does not close the connection. Calling it again does nothing.
func (s *Service) Close() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, e := range s.exported {
		if err := s.conn.Export(nil, e.path, e.iface); err != nil {
			errs = append(errs, fmt.Errorf("unexport %s on %s: %w", e.iface, e.path, err))
		}
	}
	s.exported = nil
	s.external = map[string]*externalHandler{}
	return errors.Join(errs...)
}

// managedObjects returns what GetManagedObjects answers: every handler
// object with the properties of its org.kernel.TCMUService1 interface.
func (s *Service) managedObjects() map[dbus.ObjectPath]map[string]map[string]dbus.Variant {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := make(map[dbus.ObjectPath]map[string]map[string]dbus.Variant)
	for _, b := range s.builtin {
		objs[handlerPath(b.subtype())] = interfacesOf(b.configDesc())
	}
	for _, e := range s.external {
		objs[handlerPath(e.subtype)] = interfacesOf(e.desc)
	}
	return objs
}

func (s *Service) getManagedObjects(msg dbus.Message) (map[dbus.ObjectPath]map[string]map[string]dbus.Variant, *dbus.Error) {
	if derr := checkSignature(msg, ""); derr != nil {
		return nil, derr
	}
	return s.managedObjects(), nil
}

// subtypes returns every handler subtype, sorted, for introspection.
func (s *Service) subtypes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.builtin)+len(s.external))
	for n := range s.builtin {
		names = append(names, n)
	}
	for n := range s.external {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func handlerPath(subtype string) dbus.ObjectPath {
	return dbus.ObjectPath(RootPath + "/" + subtype)
}

func interfacesOf(desc string) map[string]map[string]dbus.Variant {
	return map[string]map[string]dbus.Variant{
		HandlerInterface: {"ConfigDesc": dbus.MakeVariant(desc)},
	}
}
