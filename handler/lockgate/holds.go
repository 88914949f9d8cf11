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
// Each TPG has a lock of its own, held across its configfs write: taking
// a TPG offline may block in the kernel until the commands its sessions
// have in flight end (a user:rbd write held for its client's fence ends
// only at the kernel's cmd_time_out, never with ceph-iscsi's 0), and that
// wait must not hold up the other TPGs' switches.
//
// The zero value is ready to use; a Holds is safe for concurrent use.
type Holds struct {
	mu   sync.Mutex // guards tpgs, not the holds in it
	tpgs map[TPG]*tpgHold
}

// tpgHold is one TPG's count of holders; mu orders its switches.
type tpgHold struct {
	mu    sync.Mutex
	count int
}

func (h *Holds) of(t TPG) *tpgHold {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tpgs == nil {
		h.tpgs = map[TPG]*tpgHold{}
	}
	th := h.tpgs[t]
	if th == nil {
		th = new(tpgHold)
		h.tpgs[t] = th
	}
	return th
}

// hold takes tpgs offline through sw (those not offline already) and
// returns the function that brings each back when its last holder
// releases it. With no switch or no TPGs it does nothing.
func (h *Holds) hold(log zerolog.Logger, sw TPGSwitch, tpgs []TPG) (release func()) {
	if sw == nil || len(tpgs) == 0 {
		return func() {}
	}
	for _, t := range tpgs {
		th := h.of(t)
		th.mu.Lock()
		th.count++
		if th.count == 1 {
			if err := sw.SetTPGEnabled(t.WWN, t.TPGT, false); err != nil {
				log.Error().Err(err).Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("take target portal group offline")
			} else {
				log.Warn().Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("target portal group offline")
			}
		}
		th.mu.Unlock()
	}
	return func() {
		for _, t := range tpgs {
			th := h.of(t)
			th.mu.Lock()
			th.count--
			if th.count == 0 {
				if err := sw.SetTPGEnabled(t.WWN, t.TPGT, true); err != nil {
					log.Error().Err(err).Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("bring target portal group back")
				} else {
					log.Info().Str("target", t.WWN).Uint16("tpgt", t.TPGT).Msg("target portal group back online")
				}
			}
			th.mu.Unlock()
		}
	}
}
