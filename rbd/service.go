//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrados
#include <stdlib.h>
#include <rados/librados.h>
*/
import "C"

import (
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/ceph/go-ceph/rados"
	"github.com/rs/zerolog"
)

// serviceType is the daemon type tcmu-runner registers in Ceph's service
// map; ceph-iscsi's device_status.py and the dashboard look for it.
const serviceType = "tcmu-runner"

// statusDelay batches status updates as tcmu-runner does (1 s on its ework
// thread): a burst of timed-out commands becomes one report.
const statusDelay = time.Second

// ServiceStatus is what an image reports in Ceph's service map.
type ServiceStatus struct {
	LockOwner      bool
	LockLostCnt    uint64
	ConnLostCnt    uint64
	CmdTimedOutCnt uint64
}

// service is an image's entry in Ceph's service map. A rados_t can carry
// one registration only, so the entry lives on the image's client when
// that serves this image alone, otherwise on a connection of its own (own
// is then shut down with the image). Safe for concurrent use.
type service struct {
	log     zerolog.Logger
	cluster C.rados_t // nil when not registered
	own     *rados.Conn

	mu     sync.Mutex
	status ServiceStatus
	timer  *time.Timer
	closed bool
}

// daemonName is tcmu-runner's "<host>:<pool>/<image>"; a namespace is
// shown as in rbd's image specs.
func daemonName(host string, c Config) string { return host + ":" + c.ImageSpec() }

// dict encodes a librados service dict: "k\0v\0k\0v\0\0" (librados.h,
// rados_service_register). C.CString adds the final NUL.
func dict(kv ...string) *C.char {
	return C.CString(strings.Join(kv, "\x00") + "\x00")
}

// registerService adds the image to the service map on conn.
//
// Implements:
//
//	int rados_service_register(rados_t cluster, const char *service,
//	                           const char *daemon, const char *metadata_dict);
func registerService(conn *rados.Conn, own *rados.Conn, log zerolog.Logger, host string, c Config, imageID string) (*service, error) {
	cluster := C.rados_t(unsafe.Pointer(conn.Cluster()))
	cService := C.CString(serviceType)
	defer C.free(unsafe.Pointer(cService))
	cDaemon := C.CString(daemonName(host, c))
	defer C.free(unsafe.Pointer(cDaemon))
	meta := dict("pool_name", c.Pool, "image_name", c.Image, "image_id", imageID,
		"daemon_type", "portal", "daemon_prefix", host)
	defer C.free(unsafe.Pointer(meta))
	if err := getError(C.rados_service_register(cluster, cService, cDaemon, meta)); err != nil {
		return nil, err
	}
	s := &service{log: log, cluster: cluster, own: own}
	s.mu.Lock()
	s.updateLocked()
	s.mu.Unlock()
	return s, nil
}

// updateLocked sends the current status.
//
// Implements:
//
//	int rados_service_update_status(rados_t cluster, const char *status_dict);
func (s *service) updateLocked() {
	if s.cluster == nil || s.closed {
		return
	}
	st := dict("lock_owner", strconv.FormatBool(s.status.LockOwner),
		"lock_lost_cnt", strconv.FormatUint(s.status.LockLostCnt, 10),
		"conn_lost_cnt", strconv.FormatUint(s.status.ConnLostCnt, 10),
		"cmd_timed_out_cnt", strconv.FormatUint(s.status.CmdTimedOutCnt, 10))
	defer C.free(unsafe.Pointer(st))
	if err := getError(C.rados_service_update_status(s.cluster, st)); err != nil {
		s.log.Warn().Err(err).Msg("update ceph service status")
	}
}

// change applies f to the status and schedules one report for all changes
// within statusDelay.
func (s *service) change(f func(*ServiceStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
	if s.timer == nil && !s.closed {
		s.timer = time.AfterFunc(statusDelay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.timer = nil
			s.updateLocked()
		})
	}
}

func (s *service) cmdTimedOut() { s.change(func(st *ServiceStatus) { st.CmdTimedOutCnt++ }) }
func (s *service) connLost()    { s.change(func(st *ServiceStatus) { st.ConnLostCnt++ }) }

func (s *service) lockLost() {
	s.change(func(st *ServiceStatus) {
		if st.LockOwner {
			st.LockOwner = false
			st.LockLostCnt++
		}
	})
}

func (s *service) setLockOwner(owner bool) {
	s.change(func(st *ServiceStatus) { st.LockOwner = owner })
}

func (s *service) get() ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// close stops reporting. The entry leaves the service map when its
// rados_t shuts down (librados has no unregister).
func (s *service) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	if s.own != nil {
		s.own.Shutdown()
	}
}
