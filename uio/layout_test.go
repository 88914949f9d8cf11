package uio

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const uapiHeader = "/usr/include/linux/target_core_user.h"

// TestLayoutMatchesUAPIHeader compiles a C program against the installed
// uapi header and compares every size, offset and constant that layout.go
// mirrors. The Go constants are hand-written; this is what keeps them
// honest.
func TestLayoutMatchesUAPIHeader(t *testing.T) {
	if _, err := os.Stat(uapiHeader); err != nil {
		t.Skipf("uapi header not installed (linux-libc-dev): %v", err)
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		if cc, err = exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler (cc or gcc) in PATH")
		}
	}

	// Each check is a C expression and the Go value it must equal.
	checks := []struct {
		name string
		c    string
		want int
	}{
		{"TCMU_MAILBOX_VERSION", "TCMU_MAILBOX_VERSION", MailboxVersion},
		{"CAP_OOOC", "TCMU_MAILBOX_FLAG_CAP_OOOC", CapOOOC},
		{"CAP_READ_LEN", "TCMU_MAILBOX_FLAG_CAP_READ_LEN", CapReadLen},
		{"CAP_TMR", "TCMU_MAILBOX_FLAG_CAP_TMR", CapTMR},
		{"CAP_KEEP_BUF", "TCMU_MAILBOX_FLAG_CAP_KEEP_BUF", CapKeepBuf},
		{"sizeof(tcmu_mailbox)", "sizeof(struct tcmu_mailbox)", MailboxSize},
		{"mailbox.version", "offsetof(struct tcmu_mailbox, version)", mbVersionOff},
		{"mailbox.flags", "offsetof(struct tcmu_mailbox, flags)", mbFlagsOff},
		{"mailbox.cmdr_off", "offsetof(struct tcmu_mailbox, cmdr_off)", mbCmdrOffOff},
		{"mailbox.cmdr_size", "offsetof(struct tcmu_mailbox, cmdr_size)", mbCmdrSizeOff},
		{"mailbox.cmd_head", "offsetof(struct tcmu_mailbox, cmd_head)", mbCmdHeadOff},
		{"mailbox.cmd_tail", "offsetof(struct tcmu_mailbox, cmd_tail)", mbCmdTailOff},
		{"TCMU_OP_PAD", "TCMU_OP_PAD", OpPad},
		{"TCMU_OP_CMD", "TCMU_OP_CMD", OpCmd},
		{"TCMU_OP_TMR", "TCMU_OP_TMR", OpTMR},
		{"TCMU_OP_MASK", "TCMU_OP_MASK", OpMask},
		{"TCMU_OP_ALIGN_SIZE", "TCMU_OP_ALIGN_SIZE", opAlignment},
		{"UFLAG_UNKNOWN_OP", "TCMU_UFLAG_UNKNOWN_OP", UFlagUnknownOp},
		{"UFLAG_READ_LEN", "TCMU_UFLAG_READ_LEN", UFlagReadLen},
		{"UFLAG_KEEP_BUF", "TCMU_UFLAG_KEEP_BUF", UFlagKeepBuf},
		{"sizeof(tcmu_cmd_entry_hdr)", "sizeof(struct tcmu_cmd_entry_hdr)", HdrSize},
		{"hdr.len_op", "offsetof(struct tcmu_cmd_entry_hdr, len_op)", hdrLenOpOff},
		{"hdr.cmd_id", "offsetof(struct tcmu_cmd_entry_hdr, cmd_id)", hdrCmdIDOff},
		{"hdr.kflags", "offsetof(struct tcmu_cmd_entry_hdr, kflags)", hdrKFlagsOff},
		{"hdr.uflags", "offsetof(struct tcmu_cmd_entry_hdr, uflags)", hdrUFlagsOff},
		{"sizeof(tcmu_cmd_entry)", "sizeof(struct tcmu_cmd_entry)", CmdEntrySize},
		{"req.iov_cnt", "offsetof(struct tcmu_cmd_entry, req.iov_cnt)", reqIovCntOff},
		{"req.iov_bidi_cnt", "offsetof(struct tcmu_cmd_entry, req.iov_bidi_cnt)", reqIovBidiCntOff},
		{"req.iov_dif_cnt", "offsetof(struct tcmu_cmd_entry, req.iov_dif_cnt)", reqIovDifCntOff},
		{"req.cdb_off", "offsetof(struct tcmu_cmd_entry, req.cdb_off)", reqCdbOffOff},
		{"req.iov", "offsetof(struct tcmu_cmd_entry, req.iov)", ReqIovOff},
		{"sizeof(struct iovec)", "sizeof(struct iovec)", IovecSize},
		{"iovec.iov_base", "offsetof(struct iovec, iov_base)", 0},
		{"iovec.iov_len", "offsetof(struct iovec, iov_len)", 8},
		{"rsp.scsi_status", "offsetof(struct tcmu_cmd_entry, rsp.scsi_status)", rspStatusOff},
		{"rsp.read_len", "offsetof(struct tcmu_cmd_entry, rsp.read_len)", rspReadLenOff},
		{"rsp.sense_buffer", "offsetof(struct tcmu_cmd_entry, rsp.sense_buffer)", rspSenseOff},
		{"TCMU_SENSE_BUFFERSIZE", "TCMU_SENSE_BUFFERSIZE", SenseBufferSize},
		{"sizeof(tcmu_tmr_entry)", "sizeof(struct tcmu_tmr_entry)", TMREntrySize},
		{"tmr.tmr_type", "offsetof(struct tcmu_tmr_entry, tmr_type)", tmrTypeOff},
		{"tmr.cmd_cnt", "offsetof(struct tcmu_tmr_entry, cmd_cnt)", tmrCmdCntOff},
		{"tmr.cmd_ids", "offsetof(struct tcmu_tmr_entry, cmd_ids)", tmrCmdIDsOff},
		{"TCMU_TMR_UNKNOWN", "TCMU_TMR_UNKNOWN", TMRUnknown},
		{"TCMU_TMR_ABORT_TASK", "TCMU_TMR_ABORT_TASK", TMRAbortTask},
		{"TCMU_TMR_ABORT_TASK_SET", "TCMU_TMR_ABORT_TASK_SET", TMRAbortTaskSet},
		{"TCMU_TMR_CLEAR_ACA", "TCMU_TMR_CLEAR_ACA", TMRClearACA},
		{"TCMU_TMR_CLEAR_TASK_SET", "TCMU_TMR_CLEAR_TASK_SET", TMRClearTaskSet},
		{"TCMU_TMR_LUN_RESET", "TCMU_TMR_LUN_RESET", TMRLUNReset},
		{"TCMU_TMR_TARGET_WARM_RESET", "TCMU_TMR_TARGET_WARM_RESET", TMRTargetWarmReset},
		{"TCMU_TMR_TARGET_COLD_RESET", "TCMU_TMR_TARGET_COLD_RESET", TMRTargetColdReset},
		{"TCMU_TMR_LUN_RESET_PRO", "TCMU_TMR_LUN_RESET_PRO", TMRLUNResetPro},
	}

	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <linux/target_core_user.h>\nint main(void) {\n")
	for _, c := range checks {
		fmt.Fprintf(&src, "\tprintf(\"%%s %%ld\\n\", %q, (long)(%s));\n", c.name, c.c)
	}
	src.WriteString("\treturn 0;\n}\n")

	dir := t.TempDir()
	cfile := filepath.Join(dir, "layout.c")
	bin := filepath.Join(dir, "layout")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("compile layout probe against %s: %v\n%s", uapiHeader, err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run layout probe: %v", err)
	}

	got := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		i := strings.LastIndexByte(sc.Text(), ' ')
		if i < 0 {
			t.Fatalf("probe printed %q", sc.Text())
		}
		name := sc.Text()[:i]
		v, err := strconv.Atoi(sc.Text()[i+1:])
		if err != nil {
			t.Fatalf("probe printed %q: %v", sc.Text(), err)
		}
		got[name] = v
	}
	for _, c := range checks {
		v, ok := got[c.name]
		switch {
		case !ok:
			t.Errorf("%s: probe printed nothing", c.name)
		case v != c.want:
			t.Errorf("%s = %d in %s, layout.go has %d", c.name, v, uapiHeader, c.want)
		}
	}
}
