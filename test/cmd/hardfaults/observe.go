package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// scsiCounts are the SCSI midlayer's own counters of one disk
// (/sys/block/sdX/device/{iodone,ioerr,iotmo}_cnt): commands completed,
// completed with a result other than GOOD (BUSY, CHECK CONDITION, a host
// error; scsi_complete counts every completion, retries included), and
// commands that timed out in the midlayer. They replaced the kernel's
// scsi_dispatch_cmd_done trace events: enabling and disabling those and
// reading trace_pipe held a guest CPU in the kernel for minutes under TCG
// (soft lockups; make test-faults' guest hung until its timeout, in CI and
// here, 2026-12-06), where these are three small sysfs reads.
type scsiCounts struct {
	done, errs, timeouts int64
}

// readSCSICounts reads dev's (/dev/sdX) counters.
func readSCSICounts(dev string) (scsiCounts, error) {
	dir := filepath.Join("/sys/block", filepath.Base(dev), "device")
	var c scsiCounts
	for _, f := range []struct {
		name string
		v    *int64
	}{{"iodone_cnt", &c.done}, {"ioerr_cnt", &c.errs}, {"iotmo_cnt", &c.timeouts}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return scsiCounts{}, err
		}
		if *f.v, err = parseCount(string(b)); err != nil {
			return scsiCounts{}, fmt.Errorf("%s/%s: %w", dir, f.name, err)
		}
	}
	return c, nil
}

// parseCount parses a counter as the midlayer prints it ("0x1a2b\n").
func parseCount(s string) (int64, error) {
	return strconv.ParseInt(strings.TrimSpace(s), 0, 64)
}

// since returns what was counted from o to c.
func (c scsiCounts) since(o scsiCounts) scsiCounts {
	return scsiCounts{done: c.done - o.done, errs: c.errs - o.errs, timeouts: c.timeouts - o.timeouts}
}

func (c scsiCounts) String() string {
	return fmt.Sprintf("%d GOOD, %d other than GOOD (BUSY, CHECK CONDITION or a host error); midlayer timeouts %d",
		c.done-c.errs, c.errs, c.timeouts)
}
