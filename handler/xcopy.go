package handler

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"sync"
)

// The copy manager's limits, reported by RECEIVE COPY RESULTS with
// OPERATING PARAMETERS and enforced by EXTENDED COPY. They are LIO's and
// tcmu-runner's: two target descriptors (source and destination) and one
// segment descriptor per command, which is what initiators doing copy
// offload (VMware's XCOPY, Windows ODX through LID1) send.
const (
	xcopyHeaderLen      = 16
	xcopyTargetLen      = 32
	xcopySegmentLen     = 28 // block device to block device (02h)
	xcopyMaxTargets     = 2
	xcopyMaxSegments    = 1
	xcopyMaxDescListLen = 1024
	// Descriptor type codes (SPC-4 6.4.5, 6.4.6).
	segBlockToBlock  = 0x02
	targetIdentifier = 0xe4
)

// extendedCopyCmd serves EXTENDED COPY(LID1) (SPC-4 6.4) for block to
// block copies (segment descriptor 02h) between devices served by this
// daemon, named by identification target descriptors (E4h) carrying the
// NAA designator of their VPD page 83h. The data moves through a scratch
// buffer (non-Go memory, as backends may hand buffers to C), one chunk at
// a time: a read from the source backend, then a write to the destination
// backend, with the destination range held in its range lock.
//
// Checks, in the order LIO makes them, so that initiators that fall back
// to ordinary reads and writes on a refused copy see what they expect:
// the parameter list (PARAMETER LIST LENGTH ERROR for one shorter than its
// header or its descriptor lists, or lists longer than MAXIMUM DESCRIPTOR
// LIST LENGTH; INVALID FIELD IN PARAMETER LIST for a reserved LIST ID
// USAGE, inline data, a malformed descriptor); then the segment
// descriptors (UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE, TOO MANY SEGMENT
// DESCRIPTORS); then the target descriptors (UNSUPPORTED TARGET DESCRIPTOR
// TYPE CODE, TOO MANY TARGET DESCRIPTORS). A copy whose source or
// destination cannot be used — an index past the target list, a NUL
// target, a designator of no device here, blocks beyond a device's
// capacity, a read or write that fails — ends in COPY ABORTED / COPY
// TARGET DEVICE NOT REACHABLE, as LIO answers it (libiscsi expects it);
// devices of different block sizes are INCORRECT COPY TARGET DEVICE TYPE.
// A device this daemon serves but that the initiators of the command's
// device do not all reach alike (copyTarget) is refused with ILLEGAL
// REQUEST / COPY TARGET DEVICE NOT REACHABLE before anything is read or
// written: the copy is not allowed, rather than failed.
//
// The copy is done when the command completes. With LIST ID USAGE 00b its
// status is held for RECEIVE COPY RESULTS (COPY STATUS) under its LIST
// IDENTIFIER, when one tenant alone reaches the device (heldCopies).
func extendedCopyCmd(c *Cmd) result {
	pll := uint64(be32(c.CDB[10:]))
	switch {
	case pll == 0:
		// "shall not be considered an error" (SPC-4 6.4.1).
		return c.good()
	case pll < xcopyHeaderLen:
		return c.check(keyIllegalRequest, ascParameterListLengthError)
	case uint64(c.DataLen()) < pll:
		return c.invalidCDBField(10, -1)
	}
	var hdr [xcopyHeaderLen]byte
	c.dataOut(hdr[:])
	tdll, sdll, inline := uint64(be16(hdr[2:])), uint64(be32(hdr[8:])), uint64(be32(hdr[12:]))
	if tdll+sdll > xcopyMaxDescListLen || xcopyHeaderLen+tdll+sdll+inline > pll {
		return c.check(keyIllegalRequest, ascParameterListLengthError)
	}
	usage := hdr[1] >> 3 & 0x03
	switch {
	case usage == 1, usage == 3 && hdr[0] != 0:
		// 01b is reserved; with 11b the LIST IDENTIFIER must be zero.
		return c.invalidParamField(1, 4)
	case inline != 0:
		return c.invalidParamField(12, -1)
	}
	// A new copy under a LIST IDENTIFIER ends what was held under it.
	c.sbc.xcopy.listID, c.sbc.xcopy.hold = hdr[0], usage == 0
	if usage == 0 {
		c.dev.sbc.copies.drop(hdr[0])
	}
	var descs [xcopyMaxDescListLen]byte
	list := descs[:tdll+sdll]
	copyFromIov(list, c.Iov, xcopyHeaderLen)
	targets, segments := list[:tdll], list[tdll:]

	if sdll > 0 && segments[0] != segBlockToBlock {
		return c.copyParamError(ascUnsupportedSegmentDescType, xcopyHeaderLen+int(tdll))
	}
	if sdll%xcopySegmentLen != 0 {
		return c.invalidParamField(8, -1)
	}
	if sdll/xcopySegmentLen > xcopyMaxSegments {
		return c.copyParamError(ascTooManySegmentDescriptors, 8)
	}
	if tdll%xcopyTargetLen != 0 {
		return c.invalidParamField(2, -1)
	}
	if tdll/xcopyTargetLen > xcopyMaxTargets {
		return c.copyParamError(ascTooManyTargetDescriptors, 2)
	}
	for i := 0; i < len(targets); i += xcopyTargetLen {
		if r, ok := c.checkTarget(targets[i:i+xcopyTargetLen], xcopyHeaderLen+i); !ok {
			return r
		}
	}
	if sdll == 0 {
		return c.copyDone(0, 0)
	}
	seg := segments[:xcopySegmentLen]
	if be16(seg[2:]) != xcopySegmentLen-4 {
		return c.invalidParamField(xcopyHeaderLen+int(tdll)+2, -1)
	}
	n := uint64(be16(seg[10:]))
	src, serr := c.copyTarget(targets, be16(seg[4:]))
	dst, derr := c.copyTarget(targets, be16(seg[6:]))
	if err := errors.Join(serr, derr); err != nil {
		c.releaseCopyTargets(src, dst)
		c.dev.log.Warn().Err(err).Uint16("cmd_id", c.ID).Msg("extended copy refused before any data moved")
		return c.check(keyIllegalRequest, ascCopyTargetDeviceNotReachable)
	}
	ok := true
	switch {
	case src == nil || dst == nil:
		ok = false
	case src.set.Load().blockSize != dst.set.Load().blockSize:
		c.releaseCopyTargets(src, dst)
		return c.check(keyCopyAborted, ascCopyTargetDeviceInvalid)
	case !src.set.Load().inRange(be64(seg[12:]), n) || !dst.set.Load().inRange(be64(seg[20:]), n):
		ok = false
	}
	if !ok {
		c.releaseCopyTargets(src, dst)
		return c.check(keyCopyAborted, ascCopyTargetDeviceNotReachable)
	}
	x := &c.sbc.xcopy
	x.src, x.dst = src, dst
	if n == 0 {
		return c.copyDone(1, 0)
	}
	s := dst.set.Load()
	bs := uint64(s.blockSize)
	x.srcOff, x.dstOff, x.left, x.fua = int64(be64(seg[12:])*bs), int64(be64(seg[20:])*bs), int64(n*bs), dst.needFUA(!s.writeCache)
	x.total = x.left
	return c.lockRange(dst, be64(seg[20:]), n, false, xcopyStep)
}

// copyParamError is ILLEGAL REQUEST with one of the EXTENDED COPY
// parameter list codes and a field pointer to byte off of the list.
func (c *Cmd) copyParamError(a asc, off int) result {
	s := sense{key: keyIllegalRequest, asc: a}
	s.sks, s.sksValid = fieldPointer(false, uint16(off), 0, false)
	return c.checkSense(&s)
}

// checkTarget validates one target descriptor at byte off of the
// parameter list: an identification descriptor (E4h) naming a logical unit
// (LU ID TYPE 00b) by a 16-byte binary NAA IEEE Registered Extended
// designator (SPC-4 6.4.5.2), as LIO accepts them.
func (c *Cmd) checkTarget(t []byte, off int) (result, bool) {
	switch {
	case t[0] != targetIdentifier:
		return c.copyParamError(ascUnsupportedTargetDescType, off), false
	case t[1]>>3&0x03 != 0:
		return c.invalidParamField(off+1, 4), false
	case t[4]&0x0f != 0x1: // CODE SET: binary
		return c.invalidParamField(off+4, 3), false
	case t[5]&0x30 != 0: // ASSOCIATION: the logical unit
		return c.invalidParamField(off+5, 5), false
	case t[5]&0x0f != 0x3: // DESIGNATOR TYPE: NAA
		return c.invalidParamField(off+5, 3), false
	case t[7] != 16, t[8]>>4 != 0x6: // NAA IEEE Registered Extended
		return c.invalidParamField(off+7, -1), false
	}
	return done, true
}

// copyTarget returns the device target descriptor i names, held for the
// copy if it is not the command's own, or nil if it names none this
// daemon serves (or a null device). A device other than the command's own
// is returned only if the initiators that reach the command's device are
// exactly those that reach it (Device.copyPeer): TCMU does not say which
// initiator sent the command, so a copy may only involve devices that
// whoever sent it could have read or written by itself. Otherwise the
// error says why, and the copy is refused before a byte moves: this is
// the class of LIO's CVE-2020-28374, which the kernel fixed for its own
// backstores and leaves to the handler for user backstores.
func (c *Cmd) copyTarget(targets []byte, i uint16) (*Device, error) {
	if int(i) >= len(targets)/xcopyTargetLen {
		return nil, nil
	}
	t := targets[int(i)*xcopyTargetLen:]
	if t[1]&0x01 != 0 {
		// NUL: a null device, which this copy manager has none of.
		return nil, nil
	}
	var naa [16]byte
	copy(naa[:], t[8:24])
	if serial, err := c.dev.unitSerial(); err == nil && naaDesignator(serial) == naa {
		return c.dev, nil
	}
	if c.dev.copyPeer == nil {
		return nil, nil
	}
	d, err := c.dev.copyPeer(naa)
	if err != nil {
		return nil, err
	}
	if d == nil || d == c.dev || !d.sbc.copyUsers.acquire() {
		return nil, nil
	}
	return d, nil
}

// ErrCopyTargetNotReachable is why EXTENDED COPY refuses a device it
// serves: not every initiator that reaches the command's device reaches
// it alike (see copyTarget).
var ErrCopyTargetNotReachable = errors.New("copy target not reachable by the same initiators")

// releaseCopyTargets lets go of devices copyTarget held, when the copy
// does not happen.
func (c *Cmd) releaseCopyTargets(src, dst *Device) {
	for _, d := range []*Device{src, dst} {
		if d != nil && d != c.dev {
			d.sbc.copyUsers.release()
		}
	}
}

// xcopyState is the progress of an EXTENDED COPY.
type xcopyState struct {
	// src and dst are the devices; those other than the command's own
	// are held (copyUsers) until the command is recycled.
	src, dst       *Device
	srcOff, dstOff int64
	left, total    int64
	fua            bool
	// listID is the LIST IDENTIFIER; hold says its status is to be held
	// (LIST ID USAGE 00b).
	listID byte
	hold   bool
}

// release lets go of the devices the copy held.
func (x *xcopyState) release(own *Device) {
	if x.src != nil && x.src != own {
		x.src.sbc.copyUsers.release()
	}
	if x.dst != nil && x.dst != own {
		x.dst.sbc.copyUsers.release()
	}
}

// xcopyStep reads the next chunk from the source.
func xcopyStep(c *Cmd) result {
	buf, err := c.scratchBuf()
	if err != nil {
		return c.fail(err)
	}
	x, st := &c.sbc.xcopy, &c.sbc
	k := min(x.left, int64(len(buf)))
	st.iov = append(st.iov[:0], buf[:k])
	return c.submitTo(x.src, OpRead, x.srcOff, k, st.iov, false, xcopyRead)
}

func xcopyRead(c *Cmd, err error) result {
	if err != nil {
		return c.copyFailed(err)
	}
	x := &c.sbc.xcopy
	return c.submitTo(x.dst, OpWrite, x.dstOff, c.io.Len, c.sbc.iov, x.fua, xcopyWritten)
}

func xcopyWritten(c *Cmd, err error) result {
	if err != nil {
		return c.copyFailed(err)
	}
	x := &c.sbc.xcopy
	k := c.io.Len
	x.srcOff, x.dstOff, x.left = x.srcOff+k, x.dstOff+k, x.left-k
	if x.left == 0 {
		return c.copyDone(1, uint64(x.total))
	}
	return xcopyStep(c)
}

// copyFailed ends a copy whose read or write failed: COPY ABORTED (SPC-4
// 6.4.1), with the cause logged.
func (c *Cmd) copyFailed(err error) result {
	c.dev.stats.errors.Add(1)
	c.dev.log.Warn().Err(err).Uint16("cmd_id", c.ID).Msg("extended copy aborted")
	return c.check(keyCopyAborted, ascCopyTargetDeviceNotReachable)
}

// receiveCopyResultsCmd serves RECEIVE COPY RESULTS with OPERATING
// PARAMETERS (SPC-4 6.18.4): the copy manager's limits, as enforced by
// extendedCopyCmd.
func receiveCopyResultsCmd(c *Cmd) result {
	bs := c.settings().blockSize
	var p [46]byte
	binary.BigEndian.PutUint32(p[0:], uint32(len(p)-4)) // AVAILABLE DATA
	p[4] = 0x01                                         // SNLID: LIST ID USAGE 11b supported
	binary.BigEndian.PutUint16(p[8:], xcopyMaxTargets)
	binary.BigEndian.PutUint16(p[10:], xcopyMaxSegments)
	binary.BigEndian.PutUint32(p[12:], xcopyMaxDescListLen)
	// MAXIMUM SEGMENT LENGTH: the most a block device segment can carry
	// (its NUMBER OF BLOCKS is 16 bits).
	binary.BigEndian.PutUint32(p[16:], 0xffff*bs)
	// MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT and MAXIMUM STREAM
	// DEVICE TRANSFER SIZE stay zero: no inline data, no held data, no
	// stream devices.
	binary.BigEndian.PutUint16(p[34:], 1) // TOTAL CONCURRENT COPIES
	p[36] = 1                             // MAXIMUM CONCURRENT COPIES
	granularity := byte(bits.TrailingZeros32(bs))
	p[37] = granularity // DATA SEGMENT GRANULARITY (log2): a block
	p[38] = granularity // INLINE DATA GRANULARITY
	p[39] = granularity // HELD DATA GRANULARITY
	p[43] = 2           // IMPLEMENTED DESCRIPTOR LIST LENGTH
	p[44] = segBlockToBlock
	p[45] = targetIdentifier
	return c.respond(p[:], int(be32(c.CDB[10:])))
}

// copyDone ends a copy that moved what it was asked to: GOOD, and its
// status held if it asked for that.
func (c *Cmd) copyDone(segments uint16, bytes uint64) result {
	if x := &c.sbc.xcopy; x.hold && c.dev.copyTenant != nil {
		if tenant, ok := c.dev.copyTenant(); ok {
			c.dev.sbc.copies.put(x.listID, heldCopy{tenant: tenant, segments: segments, bytes: bytes})
		}
	}
	return c.good()
}

// heldCopies is the status of finished EXTENDED COPYs that asked for it to
// be held (LIST ID USAGE 00b), by LIST IDENTIFIER, until RECEIVE COPY
// RESULTS (COPY STATUS) returns it (SPC-4 6.18.3). SPC-4 holds it for the
// I_T nexus that sent the copy, which TCMU does not tell a handler; so a
// status is held only while one tenant alone reaches the device (one
// initiator's ACLs, or this host through tcm_loop: Device.copyTenant), and
// returned only while that same tenant alone reaches it. Another tenant
// never learns of a copy, and a device open to any initiator (demo mode)
// holds nothing. At most 256 (a LIST IDENTIFIER is a byte). Safe for
// concurrent use.
type heldCopies struct {
	mu   sync.Mutex
	byID map[byte]heldCopy
}

// heldCopy is one held status: a copy completed without errors.
type heldCopy struct {
	tenant   string
	segments uint16
	bytes    uint64
}

func (h *heldCopies) put(id byte, c heldCopy) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byID == nil {
		h.byID = make(map[byte]heldCopy)
	}
	h.byID[id] = c
}

func (h *heldCopies) drop(id byte) {
	h.mu.Lock()
	delete(h.byID, id)
	h.mu.Unlock()
}

// take returns and discards the status held under id for tenant.
func (h *heldCopies) take(id byte, tenant string) (heldCopy, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.byID[id]
	if !ok || c.tenant != tenant {
		return heldCopy{}, false
	}
	delete(h.byID, id)
	return c, true
}

// receiveCopyStatusCmd serves RECEIVE COPY RESULTS with COPY STATUS (SPC-4
// 6.18.3): the held status of the copy with the CDB's LIST IDENTIFIER, or
// ILLEGAL REQUEST / INVALID FIELD IN CDB (on the LIST IDENTIFIER) when
// none is held for whoever reaches the device now.
func receiveCopyStatusCmd(c *Cmd) result {
	tenant, ok := "", false
	if c.dev.copyTenant != nil {
		tenant, ok = c.dev.copyTenant()
	}
	var held heldCopy
	if ok {
		held, ok = c.dev.sbc.copies.take(c.CDB[2], tenant)
	}
	if !ok {
		return c.invalidCDBField(2, -1)
	}
	var p [12]byte
	binary.BigEndian.PutUint32(p[0:], uint32(len(p)-4)) // AVAILABLE DATA
	p[4] = 0x01                                         // COPY MANAGER STATUS: completed without errors
	binary.BigEndian.PutUint16(p[5:], held.segments)
	// TRANSFER COUNT in bytes, or in KiB, MiB... (TRANSFER COUNT UNITS
	// 00h, 01h, 02h...) when it does not fit 32 bits.
	units, count := byte(0), held.bytes
	for count > math.MaxUint32 {
		units, count = units+1, count>>10
	}
	p[7] = units
	binary.BigEndian.PutUint32(p[8:], uint32(count))
	return c.respond(p[:], int(be32(c.CDB[10:])))
}

// copyUsers counts EXTENDED COPYs of other devices using a device's
// backend, so that closing the device waits for them and refuses new ones.
type copyUsers struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   *sync.Cond
}

// acquire takes the device for a copy, unless it is closing.
func (u *copyUsers) acquire() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.n++
	return true
}

func (u *copyUsers) release() {
	u.mu.Lock()
	u.n--
	if u.n == 0 && u.idle != nil {
		u.idle.Broadcast()
	}
	u.mu.Unlock()
}

// close refuses new copies and waits for the running ones.
func (u *copyUsers) close() {
	u.mu.Lock()
	u.closed = true
	if u.idle == nil {
		u.idle = sync.NewCond(&u.mu)
	}
	for u.n > 0 {
		u.idle.Wait()
	}
	u.mu.Unlock()
}
