package handler

import "testing"

// TestCommandTableFacts fails for a row of the command table that does
// not say what it moves and what it does to the medium, and holds the
// facts the lock gate and the metrics rely on: a command gated by the
// lock either reads or changes the medium; only READ, VERIFY, PRE-FETCH
// and GET LBA STATUS read without changing it (a new read-only opcode has
// to be added here on purpose, since it never moves the RBD lock); block
// data flows the way the medium does.
func TestCommandTableFacts(t *testing.T) {
	readOnly := map[byte]bool{0x08: true, 0x28: true, 0xa8: true, 0x88: true, 0x2f: true, 0xaf: true, 0x8f: true, 0x34: true, 0x90: true, 0x9e: true}
	for _, o := range commands.all {
		if o.dir < dataNone || o.dir > dataOut {
			t.Errorf("%s: no data direction", o.name)
		}
		if o.medium < mediumNone || o.medium > mediumChanges {
			t.Errorf("%s: does not say what it does to the medium", o.name)
		}
		if o.flags&flagIO != 0 && o.medium == mediumNone {
			t.Errorf("%s: gated by the lock but does not touch the medium", o.name)
		}
		if o.medium == mediumReads && !readOnly[o.op] {
			t.Errorf("%s: reads only, a new read-only opcode: add it to this test on purpose", o.name)
		}
		if readOnly[o.op] && o.medium == mediumChanges {
			t.Errorf("%s: changes the medium", o.name)
		}
		if o.flags&flagBlockData != 0 {
			switch {
			case o.medium == mediumReads && o.dir != dataIn, o.medium == mediumChanges && o.dir != dataOut, o.medium == mediumNone:
				t.Errorf("%s: block data %v but medium %v", o.name, o.dir, o.medium)
			}
		}
	}
	for op, want := range map[byte]OpClass{0x28: ClassRead, 0x2a: ClassWrite, 0x89: ClassWrite, 0x93: ClassWrite, 0x2f: ClassOther, 0x42: ClassOther, 0x83: ClassOther, 0x12: ClassOther} {
		if got := commands.byOp[op][0].class(); got != want {
			t.Errorf("opcode %#x: class %v, want %v", op, got, want)
		}
	}
	if (*opInfo)(nil).class() != ClassOther {
		t.Error("a command no row serves is not ClassOther")
	}
}
