//go:build !nautilus

package rbd

/*
#cgo LDFLAGS: -lrados
#include <stdlib.h>
#include <rados/librados.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ceph/go-ceph/rados"

	"github.com/gotcmu/gotcmu/handler"
)

// A write gotcmu answers as failed must never land afterwards (issue 12
// point 2): the initiator retries it, perhaps with other data, perhaps
// through another gateway, and a late landing would overwrite the newer
// data. A write that failed with ETIMEDOUT gives no such promise by itself:
// librados' op timer (rados_osd_op_timeout) only forgets the operation on
// the client, while the message may already sit in an OSD's socket or op
// queue; and a write failed by the sweep (stuckIOLimit) is still inside
// librbd, which may send it whenever it gets going again.
//
// So such a write is failed only after its client is fenced: gotcmu puts
// its own client's address on the OSD blocklist, as the next lock holder
// would (librbd's lock break), and holds the write until the monitors have
// committed the entry. From then on no OSD that has seen that OSD map epoch
// executes anything the client sends. The retry is served through a fresh
// client (the device's lock gate reopens the image, see Reopen) that first
// waits for the latest OSD map, so every operation it sends carries an
// epoch at least as new as the blocklist's, and an OSD waits for that epoch
// before executing it (librbd's lock-break barrier: BreakRequest blocklists,
// then waits for the latest OSD map). An OSD therefore either executes a
// stale write before it knows the blocklist — and before it executes any
// write of the fresh client, which it holds until it knows it — or rejects
// it. Without this, nothing ordered a stale write of the old client against
// the retry of the new one.
//
// When the monitors do not answer, the write is held, not failed: it could
// still land. The fence is retried until the entry is committed (see
// fenceRetryMax); meanwhile the initiator sees the command take that long,
// until the kernel's cmd_time_out (attrib/cmd_time_out) or its own SCSI
// timeout gives up on it (test/results/guarantees.md, section 2). Since no
// I/O error reaches the device's lock gate meanwhile, the image tells the
// gate itself that the connection is lost (WatchConnection) when it starts
// holding writes, so that the gate takes this gateway's TPGs offline and
// the initiators move to another gateway for as long as the cut lasts.
//
// The blocklist covers the whole client: with rbd_images_per_client above
// one, the other images of a fenced client fail with ESHUTDOWN from then on
// and reopen with fresh clients, as after losing their lock.

// Bounds of the wait between attempts to blocklist a client whose monitors
// do not answer (each attempt is itself bounded by rados_mon_op_timeout).
const (
	fenceRetryMin = time.Second
	fenceRetryMax = 10 * time.Second
)

// uncertain reports whether an IO that failed with err may still change the
// image later: a write of any kind that librados gave up waiting for, or
// that librbd still holds.
func uncertain(op handler.Op, err error) bool {
	switch op {
	case handler.OpWrite, handler.OpDiscard, handler.OpWriteSame, handler.OpCompareAndWrite:
		return errors.Is(err, syscall.ETIMEDOUT)
	}
	return false
}

// heldIO is a failed IO waiting for its client to be fenced.
type heldIO struct {
	io  *handler.IO
	err error
}

// fence is an image's IOs waiting for the fence of the client that issued
// them. Safe for concurrent use.
type fence struct {
	mu      sync.Mutex
	held    []heldIO
	running bool // a goroutine fences and then completes held
}

// busy reports whether IOs wait for a fence, or are being completed after
// one.
func (f *fence) busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running || len(f.held) > 0
}

// failFenced completes io with err once cl, the client that issued it, can
// no longer write: at once if cl is fenced already, otherwise after the
// fence (see the comment at the top of this file).
func (im *Image) failFenced(cl *client, io *handler.IO, err error) {
	im.fence.mu.Lock()
	im.fence.held = append(im.fence.held, heldIO{io, err})
	start := !im.fence.running
	im.fence.running = true
	im.fence.mu.Unlock()
	if start {
		go im.fenceAndFail(cl)
	}
}

// WatchConnection registers lost, called when a write timed out and is
// held for its client's fence: the cluster does not answer (lockgate's
// connWatcher).
func (im *Image) WatchConnection(lost func()) { im.connLost.Store(&lost) }

// fenceAndFail fences cl, retrying until the monitors commit it, and then
// completes every held IO.
func (im *Image) fenceAndFail(cl *client) {
	start := time.Now()
	if lost := im.connLost.Load(); lost != nil {
		(*lost)()
	}
	for backoff, tries := fenceRetryMin, 1; ; tries++ {
		addr, already, err := im.pool.fence(cl)
		if err == nil {
			if !already {
				im.log.Warn().Str("addr", addr).Dur("took", time.Since(start)).Int("attempts", tries).
					Msg("blocklisted this gateway's own rbd client: writes it timed out on can no longer land; failing them")
			}
			break
		}
		im.fence.mu.Lock()
		n := len(im.fence.held)
		im.fence.mu.Unlock()
		im.log.Error().Err(err).Int("held", n).Dur("retry_in", backoff).
			Msg("cannot blocklist this gateway's own rbd client; holding the writes that may still land")
		time.Sleep(backoff)
		backoff = min(2*backoff, fenceRetryMax)
	}
	for {
		im.fence.mu.Lock()
		held := im.fence.held
		im.fence.held = nil
		if len(held) == 0 {
			im.fence.running = false
			im.fence.mu.Unlock()
			return
		}
		im.fence.mu.Unlock()
		for _, h := range held {
			h.io.Done(h.err)
		}
	}
}

// fence puts c on the OSD blocklist, once: it returns when the monitors
// have committed the entry and c has the OSD map that carries it. c then
// serves no new image. already reports that an earlier call fenced c.
func (p *clientPool) fence(c *client) (addr string, already bool, err error) {
	c.fenceMu.Lock()
	defer c.fenceMu.Unlock()
	addr, err = c.conn.GetAddrs()
	if err != nil {
		return "", false, fmt.Errorf("get the client's address: %w", cephErrno(err))
	}
	if c.fenced {
		return addr, true, nil
	}
	p.markBroken(c)
	if err := blocklistAdd(c.conn, addr); err != nil {
		return addr, false, err
	}
	c.fenced = true
	return addr, false, nil
}

// isFenced reports whether this gateway blocklisted c.
func (c *client) isFenced() bool {
	c.fenceMu.Lock()
	defer c.fenceMu.Unlock()
	return c.fenced
}

// blocklistAdd blocklists addr for the monitors' default time
// (mon_osd_blocklist_default_expire, an hour) through conn's monitor
// session, which the OSD blocklist does not affect, so a client may fence
// itself. The "osd blocklist add" mon command answers once the OSD map
// carrying the entry is committed (OSDMonitor waits for the proposal);
// librados then waits for the latest OSD map on conn. Clusters older than
// Pacific get the "blacklist" command.
//
// Implements:
//
//	int rados_blocklist_add(rados_t cluster, char *client_address,
//	                        uint32_t expire_seconds);
func blocklistAdd(conn *rados.Conn, addr string) error {
	cAddr := C.CString(addr)
	defer C.free(unsafe.Pointer(cAddr))
	if err := getError(C.rados_blocklist_add(C.rados_t(unsafe.Pointer(conn.Cluster())), cAddr, 0)); err != nil {
		return fmt.Errorf("add %s to the osd blocklist: %w", addr, err)
	}
	return nil
}
