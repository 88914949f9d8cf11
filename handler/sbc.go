package handler

// sbcCommands are the block commands (SBC-3); their rows are being added
// family by family (readwrite.go, verify.go, unmap.go, caw.go,
// lbastatus.go, xcopy.go).
var sbcCommands = []opInfo{}

// Additional sense codes used only by the block commands.
const (
	// ascInvalidFieldInCommandIU: the Data-Out buffer of a data CDB does
	// not match its transfer length (SAM-5 5.4; what LIO's
	// target_cmd_size_check answers since Linux 5.11).
	ascInvalidFieldInCommandIU asc = 0x0e03
)

// blockLimits is what the device server enforces and what the Block Limits
// VPD page (SBC-3 6.5.3) must advertise: the page is built from this so the
// two cannot disagree. Lengths are in logical blocks.
type blockLimits struct {
	// maxTransfer is hw_max_sectors, advertised as MAXIMUM and OPTIMAL
	// TRANSFER LENGTH. Like LIO's own backstores, the handler does not
	// reject longer transfers: the kernel has already sized the data
	// area for them, and initiators (libiscsi's tests among them) send
	// them.
	maxTransfer uint32
	// maxCompareAndWrite is MAXIMUM COMPARE AND WRITE LENGTH.
	maxCompareAndWrite uint8
	// maxUnmapLBAs (MAXIMUM UNMAP LBA COUNT) bounds the sum of the
	// blocks of one UNMAP command; maxUnmapDescriptors its descriptors.
	// Both are 0 when the backend cannot discard.
	maxUnmapLBAs        uint32
	maxUnmapDescriptors uint32
	// unmapGranularity and unmapAlignment (OPTIMAL UNMAP GRANULARITY,
	// UNMAP GRANULARITY ALIGNMENT with UGAVALID) come from the backend.
	unmapGranularity uint32
	unmapAlignment   uint32
	unmapAlignValid  bool
	// maxWriteSame is MAXIMUM WRITE SAME LENGTH. WSNZ is always 1: a
	// WRITE SAME of zero blocks is refused (see writeSameCmd).
	maxWriteSame uint64
}

const (
	// defaultMaxUnmapLBAs bounds one UNMAP (or WRITE SAME with UNMAP)
	// when the backend sets no limit of its own: 4 Mi blocks, 2 GiB of
	// 512-byte blocks, enough for any initiator to reclaim quickly while
	// keeping one command short.
	defaultMaxUnmapLBAs = 1 << 22
	// maxUnmapDescriptors is the largest count an UNMAP parameter list
	// can carry ((65535-8)/16); the real bound is maxUnmapLBAs.
	maxUnmapDescriptors = 4095
	// maxWriteSameBlocks is MAXIMUM WRITE SAME LENGTH.
	maxWriteSameBlocks = 1 << 22
)

// blockLimits returns the limits for the current settings.
func (d *Device) blockLimits() blockLimits {
	s := d.set.Load()
	bs := uint64(s.blockSize)
	l := blockLimits{
		maxTransfer:        s.maxSectors,
		maxCompareAndWrite: 1,
		maxWriteSame:       maxWriteSameBlocks,
	}
	if d.lim.Discard {
		l.maxUnmapLBAs = defaultMaxUnmapLBAs
		l.maxUnmapDescriptors = maxUnmapDescriptors
		if g := uint64(d.lim.DiscardGranularity) / bs; g > 0 {
			l.unmapGranularity = uint32(g)
			l.unmapAlignment = uint32(uint64(d.lim.DiscardAlignment) / bs % g)
			l.unmapAlignValid = true
		}
	}
	return l
}
