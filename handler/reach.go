package handler

import (
	"fmt"
	"sync"
	"time"
)

// Reach says which initiators reach each exported device: uio.Reach, read
// from configfs. Devices are named by uio.UIOName.DeviceKey.
type Reach interface {
	// Same reports whether exactly the same access paths, at least one,
	// reach devices a and b.
	Same(a, b string) bool
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
	fresh := false
	if c.r == nil || c.now().Sub(c.at) >= reachMaxAge {
		if err := c.refresh(); err != nil {
			return false, err
		}
		fresh = true
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
