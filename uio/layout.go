package uio

// Layout of the shared region, from include/uapi/linux/target_core_user.h.
// layout_test.go checks every value against the installed uapi header.
const (
	// MailboxVersion is the only mailbox version gotcmu speaks
	// (TCMU_MAILBOX_VERSION). Documentation/target/tcmu-design.rst still
	// says 1; the kernel writes 2.
	MailboxVersion = 2

	// Mailbox capability flags (TCMU_MAILBOX_FLAG_CAP_*).
	CapOOOC    = 1 << 0
	CapReadLen = 1 << 1
	CapTMR     = 1 << 2
	CapKeepBuf = 1 << 3

	// struct tcmu_mailbox.
	MailboxSize   = 128 // sizeof(struct tcmu_mailbox); also CMDR_OFF
	mbVersionOff  = 0
	mbFlagsOff    = 2
	mbCmdrOffOff  = 4
	mbCmdrSizeOff = 8
	mbCmdHeadOff  = 12
	mbCmdTailOff  = 64 // __aligned__(ALIGN_SIZE)

	// Ring entry opcodes (enum tcmu_opcode) and the mask over len_op.
	OpPad  = 0
	OpCmd  = 1
	OpTMR  = 2
	OpMask = 0x7

	// uflags written by userspace.
	UFlagUnknownOp = 0x1
	UFlagReadLen   = 0x2
	UFlagKeepBuf   = 0x4

	// struct tcmu_cmd_entry_hdr.
	HdrSize      = 8
	hdrLenOpOff  = 0
	hdrCmdIDOff  = 4
	hdrKFlagsOff = 6
	hdrUFlagsOff = 7

	// struct tcmu_cmd_entry: the request half.
	CmdEntrySize     = 112 // sizeof(struct tcmu_cmd_entry)
	reqIovCntOff     = 8
	reqIovBidiCntOff = 12
	reqIovDifCntOff  = 16
	reqCdbOffOff     = 24 // after a 4-byte hole: the inner struct is not packed
	ReqIovOff        = 48
	IovecSize        = 16 // struct iovec on 64-bit: base u64, len u64

	// struct tcmu_cmd_entry: the response half, overlaying the request.
	rspStatusOff  = 8
	rspReadLenOff = 12
	rspSenseOff   = 16
	// SenseBufferSize is TCMU_SENSE_BUFFERSIZE.
	SenseBufferSize = 96

	// struct tcmu_tmr_entry.
	TMREntrySize  = 32
	tmrTypeOff    = 8
	tmrCmdCntOff  = 12
	tmrCmdIDsOff  = 32
	opAlignment   = 8 // TCMU_OP_ALIGN_SIZE
	maxCmdID      = 0xffff
	maxCDBLen     = 8 + 255 // variable-length CDB: cdb[7] + 8
	defaultIovCap = 16
)

// TMR types carried by a TMR entry (TCMU_TMR_*).
const (
	TMRUnknown         = 0
	TMRAbortTask       = 1
	TMRAbortTaskSet    = 2
	TMRClearACA        = 3
	TMRClearTaskSet    = 4
	TMRLUNReset        = 5
	TMRTargetWarmReset = 6
	TMRTargetColdReset = 7
	TMRLUNResetPro     = 128
)

// CDBLen returns the length of a CDB starting with op, exactly as the
// kernel's scsi_command_size computes it when it copies the CDB into the
// ring. For the variable-length opcode 0x7f the length is in byte 7, so
// the second byte argument is that byte (ignored for other opcodes).
func CDBLen(op, additional byte) int {
	switch {
	case op == 0x7f:
		return int(additional) + 8
	case op < 0x20:
		return 6
	case op < 0x60:
		return 10
	case op < 0x7f:
		return 12
	case op < 0xa0:
		return 16
	case op < 0xc0:
		return 12
	default:
		return 10
	}
}
