package handler

import "time"

// SetRetryBackoff shortens the backoff of devices waiting for their
// backend, so that tests need not wait seconds for a retry.
func (m *Manager) SetRetryBackoff(lo, hi time.Duration) { m.retryMin, m.retryMax = lo, hi }
