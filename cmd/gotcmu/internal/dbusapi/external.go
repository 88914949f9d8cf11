package dbusapi

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

// externalHandler is a handler served by another process, registered with
// RegisterHandler (tcmu-runner's libtcmu-register.c protocol): the process
// owns ExternalBusPrefix+subtype and answers CheckConfig at
// ManagerPath/<subtype>. It serves its devices itself; gotcmu only lists it
// and forwards CheckConfig.
type externalHandler struct {
	s       *Service
	subtype string
	desc    string
	// owner is the unique name that owned the handler's bus name when it
	// registered; CheckConfig goes to it and to nobody else.
	owner string
}

// registerHandler implements
// org.kernel.TCMUService1.HandlerManager1.RegisterHandler.
//
// tcmu-runner waits until it sees the handler's bus name appear. gotcmu
// instead requires the name to be owned by the caller already, which
// libtcmu-register.c's order (own the name, export, then register) always
// satisfies, and which stops one client registering a subtype for a name
// someone else owns.
func (s *Service) registerHandler(msg dbus.Message, subtype, desc string) (bool, string, *dbus.Error) {
	if derr := checkSignature(msg, "ss"); derr != nil {
		return false, "", derr
	}
	sender := senderOf(msg)
	if derr := checkArg("subtype", subtype); derr != nil {
		return false, "", derr
	}
	if derr := checkArg("config description", desc); derr != nil {
		return false, "", derr
	}
	if err := checkSubtype(subtype); err != nil {
		return false, "", invalidArgs("%v", err)
	}
	caller, err := callerOf(s.ctx, s.conn, sender)
	if err != nil {
		s.log.Warn().Err(err).Msg("register handler")
		return false, "", dbus.NewError(errFailed, []any{"cannot identify the caller"})
	}
	log := s.log.With().Str("subtype", subtype).Str("sender", sender).Uint32("uid", caller.UID).Logger()
	// An external handler opens /dev/uioN and configfs, which takes root;
	// a handler of anyone else's would only put entries in root's
	// targetcli and receive the config strings root types there.
	if caller.UID != 0 {
		log.Warn().Msg("register handler refused: caller is not root")
		return false, "", dbus.NewError(errAccessDenied, []any{"only root may register handlers"})
	}
	name := ExternalBusPrefix + subtype
	owner, err := s.ownerOf(s.ctx, name)
	if err != nil {
		log.Warn().Err(err).Msg("register handler")
		return false, "", dbus.NewError(errFailed, []any{"cannot find the owner of " + name})
	}
	if owner != sender {
		return false, fmt.Sprintf("the caller must own %s before registering", name), nil
	}

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return false, "", dbus.NewError(errFailed, []any{"gotcmu is shutting down"})
	case s.builtin[subtype] != nil:
		s.mu.Unlock()
		return false, fmt.Sprintf("subtype %s is served by gotcmu itself", subtype), nil
	case s.external[subtype] != nil:
		s.mu.Unlock()
		return false, fmt.Sprintf("subtype %s is already registered", subtype), nil
	case len(s.external) >= maxExternalHandlers:
		s.mu.Unlock()
		return false, fmt.Sprintf("at most %d external handlers may register", maxExternalHandlers), nil
	}
	e := &externalHandler{s: s, subtype: subtype, desc: desc, owner: sender}
	if err := s.exportHandler(subtype, desc, e.checkConfig); err != nil {
		s.unexportHandler(subtype)
		s.mu.Unlock()
		log.Error().Err(err).Msg("register handler")
		return false, "", dbus.NewError(errFailed, []any{"cannot export the handler object"})
	}
	s.external[subtype] = e
	s.mu.Unlock()
	s.emitAdded(subtype, desc)
	log.Info().Msg("external handler registered")

	// The name may have vanished after the check above and before the
	// handler was recorded, when a NameOwnerChanged would have found
	// nothing to drop.
	s.recheckExternal(s.ctx)
	return true, "succeeded", nil
}

// checkConfig forwards org.kernel.TCMUService1.CheckConfig to the external
// handler, with the whole "<subtype>/<config>" string as tcmu-runner does
// (main.c, on_dbus_check_config), and bounds the wait.
func (e *externalHandler) checkConfig(msg dbus.Message, cfgstring string) (bool, string, *dbus.Error) {
	if derr := checkSignature(msg, "s"); derr != nil {
		return false, "", derr
	}
	if derr := checkArg("config string", cfgstring); derr != nil {
		return false, "", derr
	}
	if _, err := splitConfig(e.subtype, cfgstring); err != nil {
		return false, clampMessage(err.Error()), nil
	}
	select {
	case e.s.checks <- struct{}{}:
		defer func() { <-e.s.checks }()
	default:
		return false, "", errCheckBusy
	}
	ctx, cancel := context.WithTimeout(e.s.ctx, time.Duration(e.s.checkTimeout.Load()))
	defer cancel()
	obj := e.s.conn.Object(e.owner, dbus.ObjectPath(ManagerPath+"/"+e.subtype))
	call := obj.CallWithContext(ctx, HandlerInterface+".CheckConfig", 0, cfgstring)
	if call.Err != nil {
		e.s.log.Warn().Err(call.Err).Str("subtype", e.subtype).Msg("forward check config")
		return false, clampMessage(fmt.Sprintf("external handler %s did not answer: %v", e.subtype, call.Err)), nil
	}
	// Types checked by hand: call.Store would convert what it can.
	if len(call.Body) == 2 {
		valid, ok1 := call.Body[0].(bool)
		answer, ok2 := call.Body[1].(string)
		if ok1 && ok2 {
			return valid, clampMessage(answer), nil
		}
	}
	return false, fmt.Sprintf("external handler %s answered with the wrong types", e.subtype), nil
}

// recheckExternal drops every external handler whose bus name is no longer
// owned by the connection that registered it.
func (s *Service) recheckExternal(ctx context.Context) {
	s.mu.Lock()
	regs := make([]*externalHandler, 0, len(s.external))
	for _, e := range s.external {
		regs = append(regs, e)
	}
	s.mu.Unlock()
	for _, e := range regs {
		owner, err := s.ownerOf(ctx, ExternalBusPrefix+e.subtype)
		if err != nil {
			// The bus daemon did not answer; a later signal will
			// bring the next look.
			s.log.Warn().Err(err).Str("subtype", e.subtype).Msg("check external handler")
			continue
		}
		if owner == e.owner {
			continue
		}
		s.mu.Lock()
		dropped := s.external[e.subtype] == e
		if dropped {
			delete(s.external, e.subtype)
			s.unexportHandler(e.subtype)
		}
		s.mu.Unlock()
		if dropped {
			s.emitRemoved(e.subtype)
			s.log.Info().Str("subtype", e.subtype).Str("owner", e.owner).Msg("external handler vanished")
		}
	}
}

func (s *Service) emitAdded(subtype, desc string) {
	if err := s.conn.Emit(RootPath, objectManagerInterface+".InterfacesAdded", handlerPath(subtype), interfacesOf(desc)); err != nil {
		s.log.Warn().Err(err).Str("subtype", subtype).Msg("emit InterfacesAdded")
	}
}

func (s *Service) emitRemoved(subtype string) {
	if err := s.conn.Emit(RootPath, objectManagerInterface+".InterfacesRemoved", handlerPath(subtype), []string{HandlerInterface}); err != nil {
		s.log.Warn().Err(err).Str("subtype", subtype).Msg("emit InterfacesRemoved")
	}
}
