//go:build !race

package uio

// raceSync is empty without -race (see ring_race.go).
type raceSync struct{}

func (*raceSync) lock()   {}
func (*raceSync) unlock() {}
