package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// serveDebug serves Go's profiles of the running daemon on addr
// (--debug-addr; off by default): /debug/pprof/profile?seconds=N for a
// CPU profile, /debug/pprof/trace?seconds=N for an execution trace (where
// the data path's goroutines and threads wake and wait), and the heap,
// goroutine and mutex profiles. Anyone who reaches addr can profile the
// daemon, so give it a loopback address. It returns the listening address
// and the function that stops it; a failure to listen is logged, not
// fatal.
func serveDebug(log zerolog.Logger, addr string) (string, func()) {
	if addr == "" {
		return "", func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error().Err(err).Str("addr", addr).Msg("debug endpoint unavailable")
		return "", func() {}
	}
	// No write timeout: a profile or trace takes as long as it was asked to.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("debug endpoint stopped")
		}
	}()
	log.Warn().Str("addr", ln.Addr().String()).Msg("serving profiles and traces of the daemon (--debug-addr)")
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
}
