package dbusapi_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/dbusapi"
	"github.com/gotcmu/gotcmu/handler"
)

// devices stands for the device manager, which implements StatusSource.
type devices struct{}

func (devices) Status() []handler.DeviceStatus { return nil }

// Example shows how the daemon wires the service: export, then Serve
// (which takes the name; systemd's Type=dbus sees the daemon ready then),
// and follow check_config_timeout from the configuration file.
func Example() {
	log := zerolog.New(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, _, err := config.Load(config.DefaultPath)
	if err != nil {
		log.Error().Err(err).Msg("using the default configuration")
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		log.Fatal().Err(err).Msg("connect to the system bus")
	}
	defer conn.Close()

	var handlers []handler.Handler // file.Handler(), rbd.Handler(), ...
	svc, err := dbusapi.New(conn, handlers, log,
		dbusapi.WithCheckTimeout(cfg.CheckConfigTimeout),
		dbusapi.WithStatus(devices{}))
	if err != nil {
		log.Fatal().Err(err).Msg("export org.kernel.TCMUService1")
	}
	defer svc.Close()

	go func() {
		err := config.Watch(ctx, config.DefaultPath, cfg, log, func(c config.Config) {
			svc.SetCheckTimeout(c.CheckConfigTimeout)
		})
		if err != nil {
			log.Error().Err(err).Msg("configuration changes will not be followed")
		}
	}()
	if err := svc.Serve(ctx); err != nil {
		log.Error().Err(err).Msg("d-bus service")
	}
}
