package handler

import "time"

// SetRetryBackoff shortens the backoff of devices waiting for their
// backend, so that tests need not wait seconds for a retry.
func (m *Manager) SetRetryBackoff(lo, hi time.Duration) { m.retryMin, m.retryMax = lo, hi }

// SetGiveUpBackoff bounds the backoff of a command loop that gave up, and
// replaces its timer with after (nil: time.After), so that a test decides
// when a retry happens.
func (m *Manager) SetGiveUpBackoff(lo, hi time.Duration, after func(time.Duration) <-chan time.Time) {
	m.giveUpLo.Store(int64(lo))
	m.giveUpHi.Store(int64(hi))
	if after != nil {
		m.giveUpAfter.Store(&after)
	}
}
