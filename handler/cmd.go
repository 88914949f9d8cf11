package handler

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/gotcmu/gotcmu/uio"
)

// result says who completes a command: the dispatcher, now, or the
// completion of an IO handed to the backend.
type result bool

const (
	// done: status and sense are set; complete the command now.
	done result = true
	// pending: an IO is in flight and its completion finishes the command.
	pending result = false
)

// Cmd is one command being executed on a Device. Cmds are pooled per
// device: everything a command needs on its hot path (its IO, the sense
// buffer) is allocated once with the Cmd and reused.
type Cmd struct {
	*uio.Command
	dev *Device
	io  *IO
	// row is the command table row being executed, nil before lookup or
	// for a command no row serves: its facts decide the lock gate's
	// verdict and the metrics class.
	row *opInfo
	// then, when set, runs when the IO completes, instead of the default
	// "error → sense, else GOOD". It may submit another IO (multi-step
	// commands: FUA emulation, WRITE AND VERIFY, emulated COMPARE AND
	// WRITE). Top-level functions only, so setting it does not allocate.
	then func(c *Cmd, err error) result
	// scratch is memory for emulation (compare buffers, patterns),
	// borrowed from the device's pool (scratch.go) and returned when the
	// command is recycled.
	scratch []byte
	// sbc is the state of a multi-step block command (sbc.go).
	sbc sbcCmd
	// start is when the batch the command came in was fetched (latency
	// metrics); the commands of a batch share one clock read.
	start time.Time
	// escalated: the command was answered the hard error of a run of
	// BUSY past its bound (busy.go), which does not end the run.
	escalated bool
	senseBuf  [uio.SenseBufferSize]byte
	// submitState says who finishes the IO in flight: a Done that comes
	// while submitTo is still in Submit (a backend that completes inside
	// it, or very fast) leaves its error in inlineErr and the finishing to
	// submitTo, which hands the command's result to its caller: a command
	// of the loop's batch is then answered with the batch (Ring.CompleteLater).
	submitState atomic.Uint32
	inlineErr   error
}

// submitState values.
const (
	submitting uint32 = iota // in Submit
	submitted                // Submit returned first: Done finishes
	doneInline               // Done came first: submitTo finishes
)

func newCmd(d *Device) *Cmd {
	c := &Cmd{Command: uio.NewCommand(), dev: d}
	c.io = NewIO(c.ioDone)
	return c
}

func (c *Cmd) op() byte { return c.CDB[0] }

// settings returns the device settings snapshot for this command.
func (c *Cmd) settings() *settings { return c.dev.set.Load() }

// good sets GOOD status.
func (c *Cmd) good() result {
	c.Status = statusGood
	c.Sense = nil
	return done
}

// status sets a status without sense (BUSY, TASK SET FULL, ...).
func (c *Cmd) status(s uint8) result {
	c.Status = s
	c.Sense = nil
	return done
}

// checkSense sets CHECK CONDITION with the given sense data, in the format
// the Control mode page's D_SENSE selects.
func (c *Cmd) checkSense(s *sense) result {
	c.Status = statusCheckCondition
	c.Sense = s.encode(c.senseBuf[:], c.dev.dsense.Load())
	return done
}

// check sets CHECK CONDITION with a sense key and additional sense code.
func (c *Cmd) check(key uint8, a asc) result {
	return c.checkSense(&sense{key: key, asc: a})
}

// checkInfo is check with the INFORMATION field set.
func (c *Cmd) checkInfo(key uint8, a asc, info uint64) result {
	return c.checkSense(&sense{key: key, asc: a, info: info, infoValid: true})
}

// invalidCDBField answers ILLEGAL REQUEST / INVALID FIELD IN CDB with a
// field pointer to byte off (and bit, when bit >= 0) of the CDB.
func (c *Cmd) invalidCDBField(off int, bit int) result {
	s := sense{key: keyIllegalRequest, asc: ascInvalidFieldInCDB}
	s.sks, s.sksValid = fieldPointer(true, uint16(off), uint8(bit), bit >= 0)
	return c.checkSense(&s)
}

// invalidParamField answers ILLEGAL REQUEST / INVALID FIELD IN PARAMETER
// LIST with a field pointer into the parameter list.
func (c *Cmd) invalidParamField(off int, bit int) result {
	s := sense{key: keyIllegalRequest, asc: ascInvalidFieldInParameterList}
	s.sks, s.sksValid = fieldPointer(false, uint16(off), uint8(bit), bit >= 0)
	return c.checkSense(&s)
}

// lbaOutOfRange answers ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE.
func (c *Cmd) lbaOutOfRange() result { return c.check(keyIllegalRequest, ascLBAOutOfRange) }

// dataIn copies p into the command's Data-In buffer and returns how many
// bytes fit. When that is less than the buffer, the short length is
// reported to the kernel (TCMU_UFLAG_READ_LEN) so the initiator sees a
// residual instead of stale data-area contents.
func (c *Cmd) dataIn(p []byte) int {
	n := copyToIov(c.Iov, 0, p)
	if total := c.DataLen(); n < total {
		c.ReadLen, c.HasReadLen = uint32(n), true
	}
	return n
}

// dataOut copies the start of the Data-Out buffer (a parameter list) into
// dst and returns how many bytes were available.
func (c *Cmd) dataOut(dst []byte) int { return copyFromIov(dst, c.Iov, 0) }

// copyToIov copies src into iov starting at byte off of the iovec list.
func copyToIov(iov [][]byte, off int, src []byte) int {
	n := 0
	for _, b := range iov {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		k := copy(b[off:], src[n:])
		n += k
		off = 0
		if n == len(src) {
			break
		}
	}
	return n
}

// copyFromIov copies from iov, starting at byte off, into dst.
func copyFromIov(dst []byte, iov [][]byte, off int) int {
	n := 0
	for _, b := range iov {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		k := copy(dst[n:], b[off:])
		n += k
		off = 0
		if n == len(dst) {
			break
		}
	}
	return n
}

// subIov returns the iovecs covering [off, off+n) of iov, using dst as
// storage. It returns false if iov is shorter than off+n.
func subIov(dst [][]byte, iov [][]byte, off, n int) ([][]byte, bool) {
	dst = dst[:0]
	for _, b := range iov {
		if n == 0 {
			break
		}
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b = b[off:]
		off = 0
		if len(b) > n {
			b = b[:n]
		}
		dst = append(dst, b)
		n -= len(b)
	}
	return dst, n == 0
}

// submit hands an IO to the backend. then, if not nil, runs on completion
// (see Cmd.then).
func (c *Cmd) submit(op Op, off, length int64, iov [][]byte, fua bool, then func(*Cmd, error) result) result {
	return c.submitTo(c.dev, op, off, length, iov, fua, then)
}

// submitTo is submit to d's backend: the command's own device, or one an
// EXTENDED COPY reads or writes (xcopy.go holds it open meanwhile). The IO
// counts as in flight on the command's device, whose loop completes it.
func (c *Cmd) submitTo(d *Device, op Op, off, length int64, iov [][]byte, fua bool, then func(*Cmd, error) result) result {
	io := c.io
	io.Op, io.Off, io.Len, io.Iov, io.FUA = op, off, length, iov, fua
	io.MiscompareOffset = 0
	// A plain read or write of the command's own device is answered GOOD
	// on success and nothing else: the backend may do that itself (IO.Fast).
	io.Fast = uio.FastAnswer{}
	if then == nil && d == c.dev && (op == OpRead || op == OpWrite) && !fua && !c.HasReadLen {
		io.Fast = d.ring.FastAnswer(c.Command)
	}
	c.then = then
	c.dev.inflight.add(1)
	c.submitState.Store(submitting)
	d.be.Submit(io)
	if c.submitState.CompareAndSwap(submitting, submitted) {
		return pending
	}
	// Done came before Submit returned and left the rest to us: finish
	// on the submitter's goroutine, whose caller answers a done command.
	defer c.dev.inflight.add(-1)
	err := c.inlineErr
	c.inlineErr = nil
	return c.finish(io, err)
}

// ioDone is the completion of c.io, bound once in newCmd.
func (c *Cmd) ioDone(io *IO, err error) {
	if c.submitState.Load() == submitting {
		c.inlineErr = err
		if c.submitState.CompareAndSwap(submitting, doneInline) {
			return
		}
	}
	// The IO stays counted until its continuation has run: a multi-step
	// command submits its next IO from there, and the count must not
	// touch zero in between (a drained device gets closed).
	defer c.dev.inflight.add(-1)
	if c.finish(io, err) == done {
		c.dev.complete(c, true)
	}
}

// finish runs what follows c's IO: the continuation, or status and sense
// from err. A command the backend answered GOOD through io.Fast is settled
// here and reported pending: nothing is left to answer.
func (c *Cmd) finish(io *IO, err error) result {
	if io.answered {
		c.dev.ring.Answered(c.Command)
		c.good()
		c.dev.settle(c, io.at)
		return pending
	}
	if then := c.then; then != nil {
		c.then = nil
		return then(c, err)
	}
	if err != nil {
		return c.fail(err)
	}
	return c.good()
}

// Big-endian CDB field readers.
func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
