package main

import (
	"strings"
	"testing"
)

func TestCountTrace(t *testing.T) {
	trace := `# tracer: nop
#
# entries-in-buffer/entries-written: 4/4   #P:2
#
 kworker/1:1H-40 [001] ..s1. 10.0: scsi_dispatch_cmd_done: host_no=2 channel=0 id=0 lun=0 data_sgl=1 prot_sgl=0 prot_op=SCSI_PROT_NORMAL driver_tag=3 scheduler_tag=-1 cmnd=(WRITE_10 lba=8 txlen=8 protect=0 raw=2a 00 00 00 00 08 00 00 08 00) result=(driver=DRIVER_OK host=DID_OK message=COMMAND_COMPLETE status=SAM_STAT_GOOD)
 kworker/1:1H-40 [001] ..s1. 10.1: scsi_dispatch_cmd_done: host_no=2 channel=0 id=0 lun=0 data_sgl=1 prot_sgl=0 prot_op=SCSI_PROT_NORMAL driver_tag=3 scheduler_tag=-1 cmnd=(WRITE_10 lba=8 txlen=8 protect=0 raw=2a 00 00 00 00 08 00 00 08 00) result=(driver=DRIVER_OK host=DID_OK message=COMMAND_COMPLETE status=SAM_STAT_BUSY)
 kworker/1:1H-40 [001] ..s1. 10.2: scsi_dispatch_cmd_done: host_no=2 channel=0 id=0 lun=0 data_sgl=1 prot_sgl=0 prot_op=SCSI_PROT_NORMAL driver_tag=3 scheduler_tag=-1 cmnd=(WRITE_10 lba=8 txlen=8 protect=0 raw=2a 00 00 00 00 08 00 00 08 00) result=(host=DID_OK status=SAM_STAT_BUSY)
 kworker/1:1H-40 [001] ..s1. 10.3: scsi_dispatch_cmd_timeout: host_no=2 channel=0 id=0 lun=0 data_sgl=1 cmnd=(WRITE_10 lba=8 txlen=8) result=(host=DID_OK status=SAM_STAT_GOOD)
`
	c, err := countTrace(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	if c.good != 1 || c.notGood["WRITE_10 host=DID_OK status=SAM_STAT_BUSY"] != 2 || c.timeouts != 1 || c.lost {
		t.Fatalf("counts = %+v", c)
	}
	c, _ = countTrace(strings.NewReader("# entries-in-buffer/entries-written: 4/9   #P:2\n"))
	if !c.lost {
		t.Fatal("an overflowed buffer not noticed")
	}
}

// TestTraceCountsAddToZero: counts that were never made (the zero value)
// take a sample with non-GOOD completions without panicking (the first run
// in the guest died on the nil map).
func TestTraceCountsAddToZero(t *testing.T) {
	var c traceCounts
	c.add(traceCounts{good: 2, notGood: map[string]int{"WRITE_10 BUSY": 3}})
	if c.good != 2 || c.notGood["WRITE_10 BUSY"] != 3 {
		t.Fatalf("got %+v", c)
	}
}
