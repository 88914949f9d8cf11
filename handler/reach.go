package handler

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Reach says which initiators reach each exported device: uio.Reach, read
// from configfs. Devices are named by uio.UIOName.DeviceKey.
type Reach interface {
	// Same reports whether exactly the same access paths, at least one,
	// reach devices a and b.
	Same(a, b string) bool
	// Paths returns the access paths that reach a device, sorted (see
	// uio.Reach): "<fabric>/<wwn>/tpgt_<n> * rw|ro" or
	// "<fabric>/<wwn>/tpgt_<n> acl=<initiator> rw|ro".
	Paths(key string) []string
}

// reachMaxAge is how long a reading of configfs may allow copies between
// devices. configfs gives no notice of changes, so an ACL or LUN mapping
// changed by the operator is seen within this time; a refusal is always
// checked against a fresh reading, and adding or removing a device drops
// the reading at once.
const reachMaxAge = time.Second

// reachCache holds the last reading of which initiators reach which
// device, so that a run of EXTENDED COPYs (an ESXi clone sends thousands)
// does not walk configfs for each. Safe for concurrent use; one reading
// serves every copy waiting for it.
type reachCache struct {
	read func() (Reach, error)
	now  func() time.Time

	mu sync.Mutex
	r  Reach // nil: no reading
	at time.Time
}

func newReachCache(read func() (Reach, error), now func() time.Time) *reachCache {
	return &reachCache{read: read, now: now}
}

// same reports whether devices a and b are reached alike. It reads
// configfs again when its reading is older than reachMaxAge, and before it
// answers no from a reading it did not just make; an error (configfs
// unreadable) is no answer, and the caller refuses.
func (c *reachCache) same(a, b string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh, err := c.current()
	if err != nil {
		return false, err
	}
	if c.r.Same(a, b) {
		return true, nil
	}
	if fresh {
		return false, nil
	}
	if err := c.refresh(); err != nil {
		return false, err
	}
	return c.r.Same(a, b), nil
}

// paths returns the access paths of device key from a reading no older
// than reachMaxAge.
func (c *reachCache) paths(key string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.current(); err != nil {
		return nil, err
	}
	return c.r.Paths(key), nil
}

// current reads configfs again unless the reading is younger than
// reachMaxAge; fresh says it has just been made. Called with mu held.
func (c *reachCache) current() (fresh bool, err error) {
	if c.r != nil && c.now().Sub(c.at) < reachMaxAge {
		return false, nil
	}
	return true, c.refresh()
}

func (c *reachCache) refresh() error {
	r, err := c.read()
	if err != nil {
		c.r = nil
		return fmt.Errorf("read which initiators reach which device: %w", err)
	}
	c.r, c.at = r, c.now()
	return nil
}

// invalidate drops the reading: the next copy between devices reads
// configfs again.
func (c *reachCache) invalidate() {
	c.mu.Lock()
	c.r = nil
	c.mu.Unlock()
}

// copyPeer is Device.copyPeer for the device with key self: the served
// device with the NAA designator naa, if the initiators that reach self
// are exactly those that reach it.
func (m *Manager) copyPeer(self string, naa [16]byte) (*Device, error) {
	d, key := m.lookupNAA(naa)
	if d == nil {
		return nil, nil
	}
	same, err := m.reach.same(self, key)
	if err != nil {
		return nil, fmt.Errorf("copy between %s and %s: %w: %w", self, key, ErrCopyTargetNotReachable, err)
	}
	if !same {
		return nil, fmt.Errorf("copy between %s and %s: %w", self, key, ErrCopyTargetNotReachable)
	}
	return d, nil
}

// copyTenant is Device.copyTenant for the device with key self.
func (m *Manager) copyTenant(self string) (string, bool) {
	paths, err := m.reach.paths(self)
	if err != nil {
		return "", false
	}
	return soleTenant(paths)
}

// soleTenant returns who alone reaches a device by the access paths
// paths, and false when that is not one initiator: no path, a path open
// to any initiator of a fabric with logins ("*" on iSCSI, demo mode), or
// ACLs of two initiators. Every path of tcm_loop is this host's own: the
// loopback fabric has no remote initiators. The same initiator through
// several TPGs (ceph-iscsi gives each gateway its own) is one tenant.
func soleTenant(paths []string) (string, bool) {
	tenant := ""
	for _, p := range paths {
		where, who, ok := strings.Cut(p, " ")
		if !ok {
			return "", false
		}
		who, _, _ = strings.Cut(who, " ")
		var t string
		switch {
		case strings.HasPrefix(who, "acl="):
			t = who
		case who == "*" && strings.HasPrefix(where, "loopback/"):
			t = "loopback"
		default:
			return "", false
		}
		if tenant != "" && t != tenant {
			return "", false
		}
		tenant = t
	}
	return tenant, tenant != ""
}
