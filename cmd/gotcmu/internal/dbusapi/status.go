package dbusapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/godbus/dbus/v5"

	"github.com/gotcmu/gotcmu/handler"
)

// StatusSource is what `gotcmu status` reports from: *handler.Manager
// implements it. Status must return quickly and must not block on I/O; it
// is called from a D-Bus call goroutine.
type StatusSource interface {
	Status() []handler.DeviceStatus
}

// StatusReport is the JSON document Status returns: each device as
// handler.DeviceStatus encodes it.
type StatusReport struct {
	Devices []handler.DeviceStatus `json:"devices"`
}

// statusMethod implements org.kernel.TCMUService1.Gotcmu1.Status: the
// status of every device as JSON. Config strings name pools, images and
// files, so only root may ask, here as in the bus policy.
func (s *Service) statusMethod(msg dbus.Message) (string, *dbus.Error) {
	if derr := checkSignature(msg, ""); derr != nil {
		return "", derr
	}
	caller, err := callerOf(s.ctx, s.conn, senderOf(msg))
	if err != nil {
		s.log.Warn().Err(err).Msg("status")
		return "", dbus.NewError(errFailed, []any{"cannot identify the caller"})
	}
	if caller.UID != 0 {
		return "", dbus.NewError(errAccessDenied, []any{"only root may read the status"})
	}
	devs, err := s.devices()
	if err != nil {
		s.log.Error().Err(err).Msg("status")
		return "", dbus.NewError(errFailed, []any{err.Error()})
	}
	b, err := json.Marshal(StatusReport{Devices: devs})
	if err != nil {
		return "", dbus.NewError(errFailed, []any{"encode status: " + err.Error()})
	}
	return string(b), nil
}

// devices asks the StatusSource, sorted by name, turning a panic in it into
// an error.
func (s *Service) devices() (devs []handler.DeviceStatus, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("status source panicked: %v", p)
		}
	}()
	devs = s.status.Status()
	if devs == nil {
		devs = []handler.DeviceStatus{}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	return devs, nil
}

// FetchStatus asks the gotcmu on conn's bus for its status; it is what
// `gotcmu status` runs.
func FetchStatus(ctx context.Context, conn *dbus.Conn) (StatusReport, error) {
	var doc string
	err := conn.Object(BusName, RootPath).CallWithContext(ctx, StatusInterface+".Status", 0).Store(&doc)
	if err != nil {
		return StatusReport{}, fmt.Errorf("get status from %s: %w", BusName, err)
	}
	var r StatusReport
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return StatusReport{}, fmt.Errorf("decode status: %w", err)
	}
	return r, nil
}
