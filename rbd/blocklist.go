//go:build !nautilus

package rbd

import (
	"errors"
	"fmt"
	"syscall"
)

// ClientAddress returns the address of the image's RADOS client, the one
// another gateway's lock break puts on the OSD blocklist. tcmu-runner keeps
// it to remove its own stale entries later (rbd.c, blocklist_caches).
func (im *Image) ClientAddress() (string, error) {
	addr, err := im.client.conn.GetAddrs()
	if err != nil {
		return "", fmt.Errorf("get client address of %s: %w", im.cfg.ImageSpec(), cephErrno(err))
	}
	return addr, nil
}

// RemoveBlocklistEntry removes addr from the OSD blocklist with the mon
// command tcmu-runner uses, falling back to its pre-Pacific name
// ("blacklist") on clusters that do not know the new one. Removing an
// address that is not listed succeeds.
func (im *Image) RemoveBlocklistEntry(addr string) error {
	err := monCommand(im.client.conn, map[string]any{"prefix": "osd blocklist", "blocklistop": "rm", "addr": addr}, nil)
	if errors.Is(err, syscall.EINVAL) {
		err = monCommand(im.client.conn, map[string]any{"prefix": "osd blacklist", "blacklistop": "rm", "addr": addr}, nil)
	}
	if err != nil {
		return fmt.Errorf("remove %s from the osd blocklist: %w", addr, err)
	}
	return nil
}

// NoteConnectionLost counts a connection loss in the image's service-map
// status (conn_lost_cnt); the handler decides when the connection is lost.
func (im *Image) NoteConnectionLost() { im.svc.connLost() }

// ServiceStatus returns what the image last reported, or is about to
// report, in Ceph's service map.
func (im *Image) ServiceStatus() ServiceStatus { return im.svc.get() }
