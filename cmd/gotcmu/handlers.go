package main

import (
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/dbusapi"
	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/file"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/rbd"
)

// handlers are the backstore subtypes this daemon serves.
func handlers(cfg config.Config, log zerolog.Logger) []handler.Handler {
	return []handler.Handler{
		file.Handler(file.Options{}),
		mem.Handler(),
		rbd.Handler(rbd.Options{ImagesPerClient: cfg.RBDImagesPerClient}),
	}
}

// statusSource answers `gotcmu status` from the device manager.
type statusSource struct{ mgr *handler.Manager }

func (s statusSource) Devices() []dbusapi.DeviceStatus {
	st := s.mgr.Status()
	out := make([]dbusapi.DeviceStatus, len(st))
	for i, d := range st {
		out[i] = dbusapi.DeviceStatus{
			Name:      d.Name,
			UIO:       d.UIO,
			Backend:   d.Handler,
			Config:    d.Config,
			Size:      d.Size,
			BlockSize: d.BlockSize,
			State:     d.State,
			Reason:    d.Reason,
			LockOwner: d.LockOwner,
			LockState: d.LockState,
			InFlight:  int(d.InFlight),
			Errors:    d.Errors,
		}
	}
	return out
}
