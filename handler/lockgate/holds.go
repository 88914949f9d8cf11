package lockgate

import (
	"sync"

	"github.com/rs/zerolog"
)

// TPG names a fabric target portal group: the target's WWN (an iSCSI IQN)
// and the group's tag.
type TPG struct {
	WWN  string
	TPGT uint16
}

// Holds counts the gates recovering behind each TPG. A TPG is shared by
// every LUN exported through it, so it goes offline when the first of its
// devices loses its connection and comes back when the last one has
// reopened, as tcmu-runner's per-TPG recovery list does (target.c). TPGs
// are kernel-wide: every gate of a process should share one Holds (the
// handler.Manager owns it).
//
// The zero value is ready to use; a Holds is safe for concurrent use.
type Holds struct {
	mu    sync.Mutex
	count map[TPG]int
}

// hold takes tpgs offline through sw (those not offline already) and
// returns the function that brings each back when its last holder
// releases it. With no switch or no TPGs it does nothing.
func (h *Holds) hold(log zerolog.Logger, sw TPGSwitch, tpgs []TPG) (release func()) {
	if sw == nil || len(tpgs) == 0 {
		return func() {}
	}
	h.mu.Lock()
	if h.count == nil {
		h.count = map[TPG]int{}
	}
	for _, t := range tpgs {
		h.count[t]++
		if h.count[t] == 1 {
			if err := sw.SetTPGEnabled(t.WWN, t.TPGT, false); err != nil {
				log.Error().Err(err).Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("take target portal group offline")
			} else {
				log.Warn().Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("target portal group offline")
			}
		}
	}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, t := range tpgs {
			h.count[t]--
			if h.count[t] > 0 {
				continue
			}
			delete(h.count, t)
			if err := sw.SetTPGEnabled(t.WWN, t.TPGT, true); err != nil {
				log.Error().Err(err).Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("bring target portal group back")
			} else {
				log.Info().Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("target portal group back online")
			}
		}
	}
}
