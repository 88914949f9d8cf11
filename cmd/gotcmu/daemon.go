package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/dbusapi"
	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/metrics"
	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/netlink"
)

// options are the command-line flags. Flags given on the command line win
// over the configuration file, whose values win over the defaults.
type options struct {
	configPath  string
	logLevel    int
	logDir      string
	debug       bool
	lockPath    string
	noDBus      bool
	metricsAddr string
	debugAddr   string
	shutdown    time.Duration
	spinWait    time.Duration
	pollLoop    bool
	openTimeout time.Duration
	// busyLock, busyConn and busyTransient are the bounds of BUSY.
	busyLock, busyConn, busyTransient time.Duration
	// set holds the names of the flags given on the command line.
	set map[string]bool
}

// apply overrides cfg with the flags given on the command line.
func (o *options) apply(cfg config.Config) config.Config {
	if o.set["log-level"] {
		cfg.LogLevel = o.logLevel
	}
	if o.set["l"] {
		cfg.LogDir = o.logDir
	}
	if o.set["metrics-addr"] {
		cfg.MetricsAddr = o.metricsAddr
	}
	if o.set["open-timeout"] {
		cfg.OpenTimeout = o.openTimeout
	}
	if o.set["busy-bound-lock"] {
		cfg.BusyBoundLock = o.busyLock
	}
	if o.set["busy-bound-connection"] {
		cfg.BusyBoundConn = o.busyConn
	}
	if o.set["busy-bound-transient"] {
		cfg.BusyBoundTransient = o.busyTransient
	}
	if o.debug {
		cfg.LogLevel = 5
	}
	return cfg
}

func (o *options) register(fs *flag.FlagSet) {
	d := config.Default()
	fs.StringVar(&o.configPath, "config", "/etc/tcmu/tcmu.conf", "configuration `file` (tcmu-runner's format), watched for changes")
	fs.IntVar(&o.logLevel, "log-level", d.LogLevel, "log `level` 0-5: 0 critical, 1 error, 2 warning, 3 info, 4 debug, 5 debug with SCSI commands")
	fs.StringVar(&o.logDir, "l", d.LogDir, "log `dir`ectory; gotcmu.log is written there as well as to stderr (\"\" for stderr only)")
	fs.BoolVar(&o.debug, "d", false, "debug logging (log level 5), as tcmu-runner -d")
	fs.StringVar(&o.lockPath, "lock-file", "/run/gotcmu.lock", "lock `file` that keeps a second daemon from starting")
	fs.BoolVar(&o.noDBus, "no-dbus", false, "do not serve org.kernel.TCMUService1 (targetcli then cannot list user: backstores)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", d.MetricsAddr, "Prometheus metrics listen `address` (\"\" disables)")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve CPU profiles and execution traces of the daemon (net/http/pprof) on this `address`, e.g. 127.0.0.1:9198; off when empty (the default)")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for each device's ring to drain")
	fs.DurationVar(&o.openTimeout, "open-timeout", d.OpenTimeout, "how long opening one device's backend may take (tcmu.conf open_timeout); a device not open by then is blocked (BUSY) and retried in the background")
	fs.DurationVar(&o.busyLock, "busy-bound-lock", d.BusyBoundLock, "how long a device answers BUSY for a lost lock or fenced client (ESHUTDOWN, EROFS) before it answers NOT READY and, for rbd, takes its TPGs offline and reopens (tcmu.conf busy_bound_lock)")
	fs.DurationVar(&o.busyConn, "busy-bound-connection", d.BusyBoundConn, "the same for a cluster that does not answer (ETIMEDOUT; tcmu.conf busy_bound_connection)")
	fs.DurationVar(&o.busyTransient, "busy-bound-transient", d.BusyBoundTransient, "the same for EAGAIN, EBUSY, ENOTCONN and ECONNRESET (tcmu.conf busy_bound_transient)")
	fs.BoolVar(&o.pollLoop, "poll-loop", true, "serve each rbd device from one loop that sleeps in epoll_wait for commands and librbd completions together (false: a goroutine per image waits for librbd's completions and delivers them to the loop; see test/results/performance.md)")
	fs.DurationVar(&o.spinWait, "spin-wait", 0, "experimental: how long each device's loop polls its ring after a batch before it sleeps on the uio fd (keeps a CPU busy; 0 sleeps at once; see test/results/bench-spin.md)")
}

// run is the daemon: it returns nil when ctx is cancelled (SIGTERM) after
// every device has been blocked, drained and closed.
func run(ctx context.Context, o options) error {
	fileCfg, warnings, cfgErr := config.Load(o.configPath)
	if cfgErr != nil {
		fileCfg = config.Default()
	}
	cfg := o.apply(fileCfg)
	logs, err := openLog(cfg)
	if err != nil {
		return err
	}
	defer logs.Close()
	log := logs.logger
	if cfgErr != nil {
		log.Warn().Err(cfgErr).Str("file", o.configPath).Msg("configuration file ignored, using defaults")
	}
	for _, w := range warnings {
		log.Warn().Str("file", o.configPath).Msg(w)
	}
	if err := setHugepages(cfg.TransparentHugepages); err != nil {
		log.Warn().Err(err).Msg("transparent_hugepages not applied")
	}

	unlock, err := lockDaemon(o.lockPath)
	if err != nil {
		return err
	}
	defer unlock()

	// A previous daemon that died while the kernel waited for its netlink
	// reply left a configfs writer hung in D state: fail those waits
	// (tcmu-runner main.c does the same), then take over.
	params := netlink.ModuleParams{}
	if err := params.BlockNetlink(); err != nil {
		log.Warn().Err(err).Msg("block netlink (target_core_user not loaded?)")
	} else if err := params.ResetNetlink(); err != nil {
		log.Warn().Err(err).Msg("reset pending netlink commands")
	}
	nl, err := netlink.Dial(log.With().Str("component", "netlink").Logger())
	if errors.Is(err, syscall.ENOENT) {
		// The family appears when target_core_user loads; tcmu-runner
		// loads it too (the systemd unit does it before start).
		if out, merr := exec.CommandContext(ctx, "modprobe", "target_core_user").CombinedOutput(); merr != nil {
			log.Warn().Err(merr).Str("output", string(out)).Msg("modprobe target_core_user")
		}
		nl, err = netlink.Dial(log.With().Str("component", "netlink").Logger())
	}
	if err != nil {
		unblockNetlink(params, log)
		return fmt.Errorf("open TCM-USER netlink: %w", err)
	}
	defer nl.Close()
	if err := nl.SetFeatures(ctx); err != nil {
		log.Warn().Err(err).Msg("enable netlink replies")
	}

	mgr := handler.NewManager(log, handler.NewUIOKernel(), handlers(cfg, log))
	mgr.SetSpinWait(o.spinWait)
	mgr.SetPollLoop(o.pollLoop)
	mgr.SetOpenTimeout(cfg.OpenTimeout)
	mgr.SetOpenConcurrency(cfg.OpenConcurrency)
	mgr.SetBusyBounds(busyBounds(cfg))

	// The bus name first: with Type=dbus systemd counts the start until
	// it is owned, and adopting a device whose cluster does not answer
	// takes the open timeout or longer.
	var wg sync.WaitGroup
	var bus *dbusapi.Service
	if !o.noDBus {
		if bus, err = serveDBus(ctx, log, mgr, cfg, &wg); err != nil {
			log.Error().Err(err).Msg("D-Bus service unavailable: targetcli will not list user: backstores")
		}
	}
	stopMetrics := serveMetrics(log, cfg.MetricsAddr, mgr)
	_, stopDebug := serveDebug(log, o.debugAddr)
	defer stopDebug()

	// Each device's events are applied in order, different devices'
	// concurrently (netlink.Dispatcher); adopting a device is queued
	// behind its events like one more. Receive never waits for them:
	// while the events socket is full the kernel treats the daemon as
	// absent and configfs writes fail.
	adopt := func(ctx context.Context, ref handler.DeviceRef) {
		if err := mgr.AdoptDevice(ctx, ref); err != nil {
			log.Error().Err(err).Str("uio", ref.UIOName).Msg("adopt device")
		}
	}
	var disp *netlink.Dispatcher
	adoptAll := func(ctx context.Context) {
		refs, err := mgr.List()
		if err != nil {
			log.Error().Err(err).Msg("adopt existing devices")
			return
		}
		for _, ref := range refs {
			disp.Do(ref.UIOName, func(ctx context.Context) { adopt(ctx, ref) })
		}
	}
	disp = netlink.NewDispatcher(ctx, log.With().Str("component", "netlink").Logger(), nl,
		func(ctx context.Context, ev netlink.Event) error { return applyEvent(ctx, mgr, ev) },
		func(ctx context.Context) {
			// The socket overflowed: pick up devices added meanwhile.
			log.Warn().Msg("netlink events lost: rescanning devices")
			adoptAll(ctx)
		})
	received := make(chan struct{})
	go func() {
		defer close(received)
		if err := nl.Receive(ctx, disp.Event); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("netlink receive stopped")
		}
	}()
	adoptAll(ctx)
	unblockNetlink(params, log)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan config.Config, 1)
	go func() {
		err := config.Watch(ctx, o.configPath, fileCfg, log, func(c config.Config) {
			select {
			case reload <- c:
			case <-ctx.Done():
			}
		})
		if err != nil {
			log.Warn().Err(err).Str("file", o.configPath).Msg("configuration file not watched")
		}
	}()
	log.Info().Str("version", version).Int("gomaxprocs", runtime.GOMAXPROCS(0)).Msg("gotcmu running")
	for {
		select {
		case <-hup:
			if err := logs.Reopen(); err != nil {
				log.Error().Err(err).Msg("reopen log file")
			} else {
				log.Info().Msg("log file reopened")
			}
			continue
		case c := <-reload:
			c = o.apply(c)
			logs.SetLevel(c)
			mgr.SetOpenTimeout(c.OpenTimeout)
			mgr.SetOpenConcurrency(c.OpenConcurrency)
			if err := setHugepages(c.TransparentHugepages); err != nil {
				log.Warn().Err(err).Msg("transparent_hugepages not applied")
			}
			mgr.SetBusyBounds(busyBounds(c))
			if bus != nil {
				bus.SetCheckTimeout(c.CheckConfigTimeout)
			}
			log.Info().Int("log_level", c.LogLevel).Msg("configuration reloaded")
			continue
		case <-ctx.Done():
		}
		break
	}

	// Nothing may add a device once the manager shuts down: first the
	// events stop and what was queued for them ends (ctx is cancelled,
	// so opens in progress give up).
	<-received
	disp.Wait()
	log.Info().Msg("shutting down: blocking and draining devices")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
	defer cancel()
	mgr.Shutdown(sctx)
	stopMetrics()
	if bus != nil {
		bus.Close()
	}
	nl.Close()
	wg.Wait()
	log.Info().Msg("stopped")
	return nil
}

// busyBounds are the bounds of BUSY that cfg sets.
func busyBounds(cfg config.Config) handler.BusyBounds {
	return handler.BusyBounds{Lock: cfg.BusyBoundLock, Conn: cfg.BusyBoundConn, Transient: cfg.BusyBoundTransient}
}

func unblockNetlink(p netlink.ModuleParams, log zerolog.Logger) {
	if err := p.UnblockNetlink(); err != nil {
		log.Warn().Err(err).Msg("unblock netlink")
	}
}

// applyEvent applies one kernel event; its error is what the configfs
// write that caused it returns (netlink.Status).
func applyEvent(ctx context.Context, mgr *handler.Manager, ev netlink.Event) error {
	ref := handler.DeviceRef{UIOName: ev.Device, Minor: ev.Minor}
	switch ev.Cmd {
	case netlink.CmdAddedDevice:
		if err := mgr.Add(ctx, ref); !errors.Is(err, handler.ErrAlreadyServed) {
			return err
		}
		return nil
	case netlink.CmdRemovedDevice:
		return mgr.Remove(ctx, ev.Device)
	case netlink.CmdReconfigDevice:
		return mgr.Reconfigure(ev.Device, ev.Config, ev.Size, ev.WriteCache)
	}
	return fmt.Errorf("%v: not an event: %w", ev.Cmd, syscall.EINVAL)
}

// lockDaemon takes an fcntl write lock on path so that a second daemon
// fails at once instead of fighting over the devices.
func lockDaemon(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock file directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		f.Close()
		return nil, fmt.Errorf("another gotcmu holds %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func serveDBus(ctx context.Context, log zerolog.Logger, mgr *handler.Manager, cfg config.Config, wg *sync.WaitGroup) (*dbusapi.Service, error) {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, fmt.Errorf("connect to system bus: %w", err)
	}
	svc, err := dbusapi.New(conn, mgr.Handlers(), log.With().Str("component", "dbus").Logger(),
		dbusapi.WithCheckTimeout(cfg.CheckConfigTimeout), dbusapi.WithStatus(mgr))
	if err != nil {
		conn.Close()
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer conn.Close()
		if err := svc.Serve(ctx); err != nil {
			log.Error().Err(err).Msg("D-Bus service stopped")
		}
	}()
	return svc, nil
}

// serveMetrics starts the Prometheus endpoint; it returns the function
// that stops it. A failure to listen is logged, not fatal: serving LUNs
// matters more than metrics.
func serveMetrics(log zerolog.Logger, addr string, mgr *handler.Manager) func() {
	if addr == "" {
		return func() {}
	}
	srv, err := metrics.Serve(addr, mgr, log.With().Str("component", "metrics").Logger())
	if err != nil {
		log.Error().Err(err).Str("addr", addr).Msg("metrics endpoint unavailable")
		return func() {}
	}
	return srv.Stop
}
