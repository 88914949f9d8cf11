//go:build !nautilus

package rbd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	cephrbd "github.com/ceph/go-ceph/rbd"
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/handler"
)

// Options configures the rbd handler.
type Options struct {
	// ImagesPerClient is how many images share one RADOS client; 0 means
	// DefaultImagesPerClient.
	ImagesPerClient int
	// Host names this gateway in the service map ("<host>:<pool>/<image>");
	// "" means os.Hostname.
	Host string
}

// Handler returns the user:rbd handler. Every device it opens draws its
// RADOS client from one pool shared by the handler's devices.
func Handler(opts Options) handler.Handler {
	h := &rbdHandler{pool: newClientPool(opts.ImagesPerClient), host: opts.Host}
	if h.host == "" {
		h.host, _ = os.Hostname()
	}
	return handler.Handler{
		Subtype:     "rbd",
		ConfigDesc:  ConfigDesc,
		CheckConfig: h.checkConfig,
		Open: func(ctx context.Context, info handler.DeviceInfo, log zerolog.Logger) (handler.Backend, error) {
			im, err := h.open(ctx, info, log)
			if err != nil {
				return nil, err
			}
			return im, nil
		},
	}
}

type rbdHandler struct {
	pool *clientPool
	host string
}

// checkConfig validates the syntax and, for the daemon itself or root,
// that pool, namespace and image exist. For other D-Bus callers it checks
// the syntax and that they can read the conf file: librados reads the
// keyring on its own threads, with the daemon's credentials, so asking
// Ceph would tell them about images they could not see (handler.Caller).
func (h *rbdHandler) checkConfig(ctx context.Context, config string) error {
	cfg, err := ParseConfig(config)
	if err != nil {
		return err
	}
	if caller, ok := handler.CallerFrom(ctx); ok && caller.UID != 0 {
		if cfg.ConfPath == "" {
			return nil
		}
		f, err := os.Open(cfg.ConfPath)
		if err != nil {
			return fmt.Errorf("open ceph config: %w", err)
		}
		return f.Close()
	}
	return runCtx(ctx, func() error {
		conn, _, err := connect(ctx, keyOf(cfg))
		if err != nil {
			return err
		}
		defer conn.Shutdown()
		ioctx, err := conn.OpenIOContext(cfg.Pool)
		if err != nil {
			return fmt.Errorf("open pool %s: %w", cfg.Pool, cephErrno(err))
		}
		defer ioctx.Destroy()
		ioctx.SetNamespace(cfg.Namespace)
		img, err := cephrbd.OpenImageReadOnly(ioctx, cfg.Image, cephrbd.NoSnapshot)
		if err != nil {
			return fmt.Errorf("open image %s: %w", cfg.ImageSpec(), cephErrno(err))
		}
		return img.Close()
	})
}

// runCtx runs f and returns its error, or ctx's error if ctx ends first;
// f then finishes in the background. librados calls cannot be cancelled,
// so this keeps a caller's deadline when Ceph does not answer.
func runCtx(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("ceph did not answer in time: %w", ctx.Err())
	}
}

func (h *rbdHandler) open(ctx context.Context, info handler.DeviceInfo, log zerolog.Logger) (*Image, error) {
	cfg, err := ParseConfig(info.Config)
	if err != nil {
		return nil, fmt.Errorf("parse config of %s: %w", info.Name, err)
	}
	log = log.With().Str("image", cfg.ImageSpec()).Logger()
	type result struct {
		im  *Image
		err error
	}
	res := make(chan result, 1)
	go func() {
		im, err := h.openImage(ctx, cfg, info.Size, info.BlockSize, log)
		res <- result{im, err}
	}()
	select {
	case r := <-res:
		return r.im, r.err
	case <-ctx.Done():
		// The open finishes in the background; close what it opened.
		go func() {
			if r := <-res; r.im != nil {
				r.im.Close()
			}
		}()
		return nil, fmt.Errorf("open %s: ceph did not answer in time: %w", cfg.ImageSpec(), ctx.Err())
	}
}

// openImage opens the image cfg names for a device of size bytes, drawing
// its client from the handler's pool. It refuses an image of another size:
// serving it would either hide data or fail I/O at the end of the device.
func (h *rbdHandler) openImage(ctx context.Context, cfg Config, size int64, blockSize uint32, log zerolog.Logger) (_ *Image, err error) {
	cl, err := h.pool.get(ctx, keyOf(cfg))
	if err != nil {
		return nil, err
	}
	im := &Image{cfg: cfg, log: log, pool: h.pool, client: cl, reopen: reopenState{h: h}}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	cleanup = append(cleanup, func() { h.pool.put(cl) })

	if im.ioctx, err = cl.conn.OpenIOContext(cfg.Pool); err != nil {
		return nil, fmt.Errorf("open pool %s: %w", cfg.Pool, cephErrno(err))
	}
	cleanup = append(cleanup, im.ioctx.Destroy)
	im.ioctx.SetNamespace(cfg.Namespace)

	if im.image, err = rbdOpen(im.ioctx, cfg.Image); err != nil {
		return nil, fmt.Errorf("open image %s: %w", cfg.ImageSpec(), err)
	}
	cleanup = append(cleanup, func() {
		if err := rbdClose(im.image); err != nil {
			log.Warn().Err(err).Msg("close image after failed open")
		}
	})

	got, err := rbdSize(im.image)
	if err != nil {
		return nil, fmt.Errorf("get size of %s: %w", cfg.ImageSpec(), err)
	}
	if got != size {
		return nil, fmt.Errorf("image %s is %d bytes but the device is %d bytes: resize one to match: %w",
			cfg.ImageSpec(), got, size, syscall.EINVAL)
	}
	im.size.Store(got)
	if im.objSize, err = rbdObjectSize(im.image); err != nil {
		return nil, fmt.Errorf("stat %s: %w", cfg.ImageSpec(), err)
	}
	gran, err := discardGranularity(cl.conn)
	if err != nil {
		return nil, err
	}
	nonRot, err := poolNonRotational(cl.conn, cfg.Pool)
	if err != nil {
		// tcmu-runner too serves the image when the class is unknown.
		log.Warn().Err(err).Msg("detect device class of pool; reporting rotating media")
	}
	im.limits = limits(gran, im.objSize, blockSize, nonRot)
	im.stuck = stuckIOLimit(cl.timeout)

	if im.svc, err = h.register(ctx, im); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, im.svc.close)

	if err := im.startEvents(); err != nil {
		return nil, fmt.Errorf("start completions of %s: %w", cfg.ImageSpec(), err)
	}
	log.Info().Int64("size", got).Int64("object_size", im.objSize).
		Dur("osd_op_timeout", cl.timeout).Bool("non_rotational", nonRot).Msg("rbd image open")
	return im, nil
}

// serviceOnly configures a connection that carries only an image's
// service-map entry (a status report to the manager every few seconds, no
// OSD traffic): one messenger worker instead of 3 and one io_context_pool
// thread instead of 2. Without it a shared client saved little, since
// each of its images still had a connection of full size for its entry:
// BenchmarkImageCost on the micro Ceph (16 idle images, 2026-12-05),
// rbd_images_per_client 16 cost 13.9 threads and 2550 KiB of RssAnon per
// image, 1 cost 15.9 and 2636; with these options 16 costs 10.9 and 2139,
// under go-ceph's own client per image (15 and 2284).
var serviceOnly = [][2]string{{"ms_async_op_threads", "1"}, {"librados_thread_count", "1"}}

// register puts the image in Ceph's service map: on its own client when
// that serves no other image, otherwise on a connection of its own,
// because a rados_t carries one registration. A failure to register is
// logged, not fatal: the image is still served, but ceph -s does not show
// it.
func (h *rbdHandler) register(ctx context.Context, im *Image) (*service, error) {
	cl, cfg, log := im.client, im.cfg, im.log
	id, err := rbdID(im.image)
	if err != nil {
		return nil, fmt.Errorf("get id of %s: %w", cfg.ImageSpec(), err)
	}
	conn, own := cl.conn, false
	if !h.pool.exclusive() {
		c, _, err := connect(ctx, cl.key, serviceOnly...)
		if err != nil {
			log.Warn().Err(err).Msg("connect for the ceph service map; image not listed there")
			return &service{log: log}, nil
		}
		conn, own = c, true
	}
	ownConn := conn
	if !own {
		ownConn = nil
	}
	svc, err := registerService(conn, ownConn, log, h.host, cfg, id)
	if err != nil {
		if own {
			conn.Shutdown()
		}
		if errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("register %s in the ceph service map: client already registered: %w", cfg.ImageSpec(), err)
		}
		log.Warn().Err(err).Msg("register in the ceph service map; image not listed there")
		return &service{log: log}, nil
	}
	return svc, nil
}
