//go:build race

package uio

import "sync"

// raceSync mirrors cring.h's lock for the race detector, which does not
// see what C code does: under -race every call into the ring's C side
// holds this mutex too, and Kick holds it while it rings the doorbell, so
// that the detector knows what the C lock and atomics already order (data
// written before a completion happens before the kernel reads it).
// Without -race it is empty (ring_norace.go).
type raceSync struct{ mu sync.Mutex }

func (s *raceSync) lock()   { s.mu.Lock() }
func (s *raceSync) unlock() { s.mu.Unlock() }
