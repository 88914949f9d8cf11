package uio

import "errors"

// Command is one SCSI command taken off the ring. Everything the kernel
// wrote into the ring slot (CDB, iovecs) is copied into the Command when it
// is fetched, because completing out of order overwrites slots that may
// still belong to other commands. The iovec slices point into the mapped
// data area: reads fill them, writes take data from them.
//
// The response fields (Status, Sense, ReadLen) are written by the handler
// before it calls Ring.Complete. A Command is reused after completion, so
// nothing may keep a reference to it or its slices past Complete.
type Command struct {
	// ID is the kernel's cmd_id (1..65535).
	ID uint16
	// CDB is the command descriptor block, copied out of the ring.
	CDB []byte
	// Iov is the Data-Out buffer (for writes) or Data-In buffer (for reads).
	Iov [][]byte
	// BidiIov is the Data-In buffer of a bidirectional command.
	BidiIov [][]byte
	// Err is non-nil when the ring entry was malformed (a CDB or iovec
	// outside the map, say). The command still has to be completed; the
	// handler answers it with a CHECK CONDITION and touches none of its
	// buffers.
	Err error

	// Status is the SCSI status byte to return.
	Status uint8
	// Sense is the sense data for a CHECK CONDITION; at most
	// SenseBufferSize bytes are sent.
	Sense []byte
	// ReadLen, when HasReadLen is set, reports how many bytes of a read
	// were transferred (TCMU_UFLAG_READ_LEN), for short reads.
	ReadLen    uint32
	HasReadLen bool

	unknownOp bool
	live      bool // fetched by Next and not yet completed
	gen       uint64
	cdbBuf    [maxCDBLen]byte
	iovBuf    [][]byte
}

// NewCommand returns an empty Command ready to be filled by Ring.Next.
func NewCommand() *Command {
	return &Command{iovBuf: make([][]byte, 0, defaultIovCap)}
}

// DataLen returns the total length of Iov.
func (c *Command) DataLen() int {
	n := 0
	for _, b := range c.Iov {
		n += len(b)
	}
	return n
}

func (c *Command) reset() {
	c.ID = 0
	c.CDB = nil
	c.Iov = nil
	c.BidiIov = nil
	c.Err = nil
	c.Status = 0
	c.Sense = nil
	c.ReadLen = 0
	c.HasReadLen = false
	c.unknownOp = false
}

// Errors describing a malformed ring entry. A command carrying one of them
// in Err is answered without touching its buffers.
var (
	ErrBadCDB     = errors.New("cdb outside its ring entry")
	ErrBadIovec   = errors.New("iovec outside the data area")
	ErrBadIovCnt  = errors.New("iovec count larger than its ring entry")
	ErrShortEntry = errors.New("command entry shorter than struct tcmu_cmd_entry")
)

// ErrBrokenRing means the ring's structure cannot be trusted (cmd_head
// outside the ring or behind what was fetched, an entry length of zero,
// past cmd_head or across the end of the ring, an entry header rewritten
// after it was fetched, a cmd_id of 0 or one the kernel still holds,
// cmd_tail changed by a reset_ring the handler did not make). Nothing
// more can be fetched until the ring is reset (Ring.Reset, then
// action/reset_ring).
var ErrBrokenRing = errors.New("command ring is broken")
