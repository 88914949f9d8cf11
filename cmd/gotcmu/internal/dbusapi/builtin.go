package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/gotcmu/gotcmu/handler"
)

// builtinHandler is the D-Bus face of one of gotcmu's own handlers.
type builtinHandler struct {
	s *Service
	h handler.Handler
}

func (b *builtinHandler) subtype() string    { return b.h.Subtype }
func (b *builtinHandler) configDesc() string { return b.h.ConfigDesc }

// checkConfig implements org.kernel.TCMUService1.CheckConfig for a
// built-in handler. targetcli sends "<subtype>/<config>"
// (ui_backstore.py, ui_command_create); tcmu-runner hands that whole
// string to its handler, gotcmu hands the handler <config> alone, as
// handler.Handler documents.
func (b *builtinHandler) checkConfig(msg dbus.Message, cfgstring string) (bool, string, *dbus.Error) {
	if derr := checkSignature(msg, "s"); derr != nil {
		return false, "", derr
	}
	if derr := checkArg("config string", cfgstring); derr != nil {
		return false, "", derr
	}
	sender := senderOf(msg)
	config, err := splitConfig(b.h.Subtype, cfgstring)
	if err != nil {
		return false, clampMessage(err.Error()), nil
	}
	caller, err := callerOf(b.s.ctx, b.s.conn, sender)
	if err != nil {
		b.s.log.Warn().Err(err).Msg("check config")
		return false, "", dbus.NewError(errFailed, []any{"cannot identify the caller"})
	}
	log := b.s.log.With().Str("subtype", b.h.Subtype).Str("sender", sender).Uint32("uid", caller.UID).Logger()
	valid, answer, derr := b.s.runCheck(caller, func(ctx context.Context) error {
		return b.h.CheckConfig(ctx, config)
	})
	if derr != nil {
		log.Warn().Str("error", derr.Error()).Msg("check config refused")
		return false, "", derr
	}
	log.Debug().Bool("valid", valid).Str("answer", answer).Msg("check config")
	return valid, answer, nil
}

// errCheckBusy is reported when maxConcurrentChecks checks are running.
var errCheckBusy = dbus.NewError(errLimitsExceeded, []any{"too many config checks in progress; try again"})

// runCheck runs check as caller within the check timeout and turns its
// result into CheckConfig's answer. A check still running at the deadline
// is answered (false, "... timed out") and keeps its token until it
// returns, so handlers ignoring their context cannot pile up without
// bound.
func (s *Service) runCheck(caller handler.Caller, check func(context.Context) error) (bool, string, *dbus.Error) {
	select {
	case s.checks <- struct{}{}:
	default:
		return false, "", errCheckBusy
	}
	// Cancelled when the answer is sent: a check still running then has
	// missed its deadline or the Service is closing.
	timeout := time.Duration(s.checkTimeout.Load())
	ctx, cancel := context.WithTimeout(handler.WithCaller(s.ctx, caller), timeout)
	defer cancel()
	done := make(chan error, 1)
	result := make(chan error, 1)
	go func() {
		err := <-done
		<-s.checks
		result <- err
	}()
	runAsCaller(caller, func() error { return check(ctx) }, done)

	select {
	case err := <-result:
		if err != nil {
			return false, clampMessage(err.Error()), nil
		}
		return true, "success", nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, fmt.Sprintf("check timed out after %s", timeout), nil
		}
		return false, "", dbus.NewError(errFailed, []any{"gotcmu is shutting down"})
	}
}
