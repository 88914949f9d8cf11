package handler

import (
	"errors"
	"slices"
	"testing"
)

func rtpgCDB(format byte, alloc uint32) []byte {
	return []byte{0xa3, format<<5 | 0x0a, 0, 0, 0, 0, byte(alloc >> 24), byte(alloc >> 16), byte(alloc >> 8), byte(alloc), 0, 0}
}

// ceph-iscsi's implicit layout: "ao" on the owner, "ano<tag>" elsewhere.
var cephGroups = []PortGroup{
	{
		Name: "ao", ID: 1, State: aluaActiveOptimized, Supported: supT | supANO | supAO, Preferred: true,
		Implicit: true, ImplicitTransitionSecs: 45, Status: 2,
		Ports: []TargetPort{{RelativeID: 1, Enabled: true}},
	},
	{
		Name: "ano2", ID: 2, State: aluaActiveNonOptimized, Supported: supT | supANO | supAO,
		Implicit: true, ImplicitTransitionSecs: 30,
		Ports: []TargetPort{{RelativeID: 2}, {RelativeID: 0x0103}},
	},
}

func TestReportTargetPortGroups(t *testing.T) {
	descs := cat(
		0x80, 0x83, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0, 0, 0x00, 0x01,
		0x01, 0x83, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0, 0, 0x00, 0x02, 0, 0, 0x01, 0x03,
	)
	length := cat(0x00, 0x00, 0x00, 28)
	short := cat(length, descs)
	extended := cat(0x00, 0x00, 0x00, 32, 0x10, 45, 0x00, 0x00, descs)
	d := newTestDevice(t, testDev{cfg: &fakeConfig{groups: cephGroups}})
	runCases(t, d, []cmdCase{
		{name: "length_only_header", cdb: rtpgCDB(0, 512), inLen: 512, want: short},
		{name: "extended_header", cdb: rtpgCDB(1, 512), inLen: 512, want: extended},
		{name: "allocation_length_header", cdb: rtpgCDB(0, 4), inLen: 4, want: length},
		{name: "allocation_length_cuts_descriptor", cdb: rtpgCDB(1, 14), inLen: 64, want: extended[:14]},
		{name: "allocation_length_zero", cdb: rtpgCDB(0, 0), inLen: 0, want: nil},
		{name: "format_2", cdb: rtpgCDB(2, 512), inLen: 512, sense: invalidCDB(1, 7)},
		{name: "format_7", cdb: rtpgCDB(7, 512), inLen: 512, sense: invalidCDB(1, 7)},
	})
}

func TestReportTargetPortGroupsReadsConfigfsEachTime(t *testing.T) {
	cfg := &fakeConfig{groups: slices.Clone(cephGroups)}
	d := newTestDevice(t, testDev{cfg: cfg})
	cmdCase{cdb: rtpgCDB(0, 64), inLen: 64, want: cat(0, 0, 0, 28, 0x80, 0x83, 0, 1, 0, 2, 0, 1, 0, 0, 0, 1, 0x01, 0x83, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 1, 3)}.check(t, d)
	// The other gateway took over: configfs says so now.
	cfg.groups[0].State, cfg.groups[1].State = aluaActiveNonOptimized, aluaActiveOptimized
	cmdCase{cdb: rtpgCDB(0, 8), inLen: 8, want: cat(0, 0, 0, 28, 0x81, 0x83, 0, 1)}.check(t, d)
}

func TestReportTargetPortGroupsEdges(t *testing.T) {
	many := make([]TargetPort, 300)
	for i := range many {
		many[i].RelativeID = uint16(i + 1)
	}
	t.Run("no_groups", func(t *testing.T) {
		d := newTestDevice(t, testDev{})
		cmdCase{cdb: rtpgCDB(1, 64), inLen: 64, want: cat(0, 0, 0, 4, 0x10, 0, 0, 0)}.check(t, d)
	})
	t.Run("port_count_capped", func(t *testing.T) {
		d := newTestDevice(t, testDev{cfg: &fakeConfig{groups: []PortGroup{{ID: 3, State: aluaStandby, Supported: supS, Ports: many}}}})
		want := cat(0, 0, (8+4*255)>>8, (8+4*255)&0xff, 0x02, 0x04, 0x00, 0x03, 0, 0, 0, 255)
		for _, p := range many[:255] {
			want = cat(want, 0, 0, byte(p.RelativeID>>8), byte(p.RelativeID))
		}
		cmdCase{cdb: rtpgCDB(0, 4096), inLen: 4096, want: want}.check(t, d)
	})
	t.Run("config_error", func(t *testing.T) {
		d := newTestDevice(t, testDev{cfg: &fakeConfig{err: errConfigfs}})
		cmdCase{cdb: rtpgCDB(0, 64), inLen: 64, sense: fixedSense(keyHardwareError, 0x4400, nil)}.check(t, d)
	})
}

func stpgCDB(n uint32) []byte {
	return []byte{0xa4, 0x0a, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 0, 0}
}

// stpgList is a SET TARGET PORT GROUPS parameter list: pairs of (state,
// group).
func stpgList(pairs ...int) []byte {
	p := zeros(4)
	for i := 0; i+1 < len(pairs); i += 2 {
		p = append(p, byte(pairs[i]), 0, byte(pairs[i+1]>>8), byte(pairs[i+1]))
	}
	return p
}

func explicitTestGroups() []PortGroup {
	return []PortGroup{
		{ID: 1, State: aluaActiveOptimized, Supported: supT | supU | supS | supANO | supAO, Implicit: true, Explicit: true},
		{ID: 2, State: aluaActiveNonOptimized, Supported: supT | supANO | supAO, Explicit: true},
		{ID: 3, State: aluaActiveNonOptimized, Supported: supT | supANO | supAO, Implicit: true},
		{ID: 4, State: aluaStandby, Supported: supO | supLBD | supS, Explicit: true},
	}
}

func TestSetTargetPortGroups(t *testing.T) {
	lengthError := fixedSense(keyIllegalRequest, 0x1a00, nil)
	tests := []struct {
		name  string
		cdb   []byte
		list  []byte
		sense []byte
		want  []stateChange
	}{
		{name: "swap_active", list: stpgList(aluaStandby, 1, aluaActiveOptimized, 2), want: []stateChange{{1, aluaStandby}, {2, aluaActiveOptimized}}},
		{name: "unavailable", list: stpgList(aluaUnavailable, 1), want: []stateChange{{1, aluaUnavailable}}},
		{name: "standby", list: stpgList(aluaStandby, 4), want: []stateChange{{4, aluaStandby}}},
		{name: "lba_dependent_is_implicit_only", list: stpgList(aluaLBADependent, 4), sense: invalidParam(4, 3)},
		{name: "header_only", list: stpgList(), want: nil},
		{name: "no_parameter_list", cdb: stpgCDB(0), want: nil},
		{name: "state_bits_above_nibble_ignored", list: stpgList(0xf0|aluaActiveOptimized, 2), want: []stateChange{{2, aluaActiveOptimized}}},
		{name: "implicit_only_group", list: stpgList(aluaActiveOptimized, 3), sense: invalidParam(6, -1)},
		{name: "unknown_group", list: stpgList(aluaActiveOptimized, 9), sense: invalidParam(6, -1)},
		{name: "unsupported_state", list: stpgList(aluaStandby, 2), sense: invalidParam(4, 3)},
		{name: "offline_is_a_port_state", list: stpgList(aluaOffline, 4), sense: invalidParam(4, 3)},
		{name: "transitioning_cannot_be_asked", list: stpgList(aluaTransitioning, 1), sense: invalidParam(4, 3)},
		{name: "reserved_state", list: stpgList(0x5, 1), sense: invalidParam(4, 3)},
		{name: "same_group_twice", list: stpgList(aluaActiveOptimized, 1, aluaStandby, 1), sense: invalidParam(10, -1)},
		// Nothing changes unless every descriptor is valid.
		{name: "atomic", list: stpgList(aluaStandby, 1, aluaStandby, 2), sense: invalidParam(8, 3)},
		{name: "list_shorter_than_header", cdb: stpgCDB(2), list: zeros(2), sense: lengthError},
		{name: "partial_descriptor", cdb: stpgCDB(10), list: cat(stpgList(aluaStandby, 1), 0, 0), sense: lengthError},
		{name: "data_out_shorter_than_list", cdb: stpgCDB(12), list: stpgList(aluaStandby, 1), sense: lengthError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &fakeConfig{groups: explicitTestGroups()}
			d := newTestDevice(t, testDev{cfg: cfg})
			cdb := tt.cdb
			if cdb == nil {
				cdb = stpgCDB(uint32(len(tt.list)))
			}
			list := tt.list
			if list == nil {
				list = []byte{}
			}
			c, _ := exec(t, d, cdb, list, 0, 3)
			checkResult(t, c, nil, nil, tt.sense)
			if !slices.Equal(cfg.set, tt.want) {
				t.Errorf("transitions %v, want %v", cfg.set, tt.want)
			}
		})
	}
}

func TestSetTargetPortGroupsFailure(t *testing.T) {
	cfg := &fakeConfig{groups: explicitTestGroups(), setErr: errors.New("write alua_access_state: invalid argument")}
	d := newTestDevice(t, testDev{cfg: cfg})
	list := stpgList(aluaActiveOptimized, 2)
	cmdCase{cdb: stpgCDB(uint32(len(list))), out: list, sense: fixedSense(keyHardwareError, 0x670a, nil)}.check(t, d)
}

func TestSetTargetPortGroupsConfigError(t *testing.T) {
	// configfs cannot be read: the command stays enabled to say so.
	d := newTestDevice(t, testDev{cfg: &fakeConfig{err: errConfigfs}})
	list := stpgList(aluaActiveOptimized, 2)
	cmdCase{cdb: stpgCDB(uint32(len(list))), out: list, sense: fixedSense(keyHardwareError, 0x4400, nil)}.check(t, d)
}
