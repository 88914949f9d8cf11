package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tcmuTable = `## ceph-iscsi on two gateways: tcmu-runner (2026-12-05, 1719 s, test/gateway/test-gateway.sh)

Harness at commit 5ceb7fb; tcmu-runner 1.5.4-4.1; ceph-iscsi 3.5-3.

| guest | check | result |
|---|---|---|
| a | gw-a: tcmu-runner.service enabled for multi-user.target | PASS |
| a | gw-a: tcmu-runner started by systemd at boot (tcmu-runner.service active, owns org.kernel.TCMUService1) | PASS |
| a | ceph service status: tcmu-runner entries for both disks | PASS |
| a | rbd-target-api's disk1 status sampled through the failover (16 samples) | PASS |
| b | iscsi-test-cu across both gateways: MultipathIO.Simple ([FAILED] WRITE10 failed) | FAIL |
| b | iscsi-test-cu across both gateways: MultipathIO.CompareAndWriteAsync | PASS |
| a | gw-a: systemd started tcmu-runner again after SIGKILL (the unit's Restart=: no): 'wait_until 30 restarted_from 269' failed | FAIL |
| b | initiator: writes stalled 35 s after gw-a's handler was killed, at most 60 s | PASS |
`

const gotcmuTable = `## ceph-iscsi on two gateways: gotcmu (2026-12-05, 3807 s, test/gateway/test-gateway.sh)

Harness at commit a92be50; gotcmu 0.1 (the package); ceph-iscsi 3.5-3.

| guest | check | result |
|---|---|---|
| a | gw-a: dpkg -i gotcmu_0.1_amd64.deb over tcmu-runner (ceph-iscsi stays installed) | PASS |
| a | gw-a: gotcmu.service enabled for multi-user.target | PASS |
| a | gw-a: gotcmu started by systemd at boot (tcmu-runner.service active, owns org.kernel.TCMUService1) | PASS |
| a | ceph service status: tcmu-runner entries for both disks | PASS |
| a | rbd-target-api's disk1 status sampled through the failover (14 samples) | PASS |
| b | iscsi-test-cu across both gateways: MultipathIO.Simple ([FAILED] WRITE10 failed with status 8) | PASS |
| b | iscsi-test-cu across both gateways: MultipathIO.CompareAndWriteAsync (FAILED) | FAIL |
| a | gw-a: systemd started gotcmu again after SIGKILL (the unit's Restart=: on-failure) | PASS |
| b | initiator: writes stalled 7 s after gw-a's handler was killed, at most 60 s | PASS |
`

func run(t *testing.T, a, b string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.md"), filepath.Join(dir, "b.md")
	for p, s := range map[string]string{pa: a, pb: b} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	md := filepath.Join(dir, "out.md")
	rc := cmd([]string{"-md", md, pa, pb}, &out, &errb)
	if rc != 2 {
		written, err := os.ReadFile(md)
		if err != nil || string(written) != out.String() {
			t.Errorf("-md file differs from stdout (err %v)", err)
		}
	}
	return out.String() + errb.String(), rc
}

func TestCompareMatchesChecksAcrossHandlers(t *testing.T) {
	out, rc := run(t, tcmuTable, gotcmuTable)
	if rc != 1 {
		t.Errorf("exit %d, want 1 (gotcmu fails a check tcmu-runner passes)\n%s", rc, out)
	}
	for _, want := range []string{
		"| a | gw-a: tcmu-runner.service enabled for multi-user.target | PASS | PASS |",
		"| a | gw-a: tcmu-runner started by systemd at boot (tcmu-runner.service active, owns org.kernel.TCMUService1) | PASS | PASS |",
		"| a | ceph service status: tcmu-runner entries for both disks | PASS | PASS |",
		"| a | rbd-target-api's disk1 status sampled through the failover (16 samples) | PASS | PASS |",
		"| b | iscsi-test-cu across both gateways: MultipathIO.Simple ([FAILED] WRITE10 failed) | FAIL | PASS |",
		"| a | gw-a: dpkg -i gotcmu_0.1_amd64.deb over tcmu-runner (ceph-iscsi stays installed) | — | PASS |",
		"Checks tcmu-runner passes and gotcmu fails: 1:\n\n- b: iscsi-test-cu across both gateways: MultipathIO.CompareAndWriteAsync\n",
		"Checks gotcmu passes and tcmu-runner fails: 2:\n\n- b: iscsi-test-cu across both gateways: MultipathIO.Simple ([FAILED] WRITE10 failed)\n" +
			"- a: gw-a: systemd started tcmu-runner again after SIGKILL (the unit's Restart=: no): 'wait_until 30 restarted_from 269' failed\n",
		"| b | initiator: writes stalled 35 s after gw-a's handler was killed, at most 60 s | PASS | PASS |",
		"| passed / failed | 6 / 2 | 8 / 1 |",
		"| build | Harness at commit 5ceb7fb; tcmu-runner 1.5.4-4.1; ceph-iscsi 3.5-3. | Harness at commit a92be50; gotcmu 0.1 (the package); ceph-iscsi 3.5-3. |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
	if n := strings.Count(out, "| b | iscsi-test-cu across both gateways: MultipathIO.CompareAndWriteAsync"); n != 1 {
		t.Errorf("CompareAndWriteAsync in %d rows, want 1 (matched across the runs)\n%s", n, out)
	}
}

func TestCompareNoWorseExitsZero(t *testing.T) {
	out, rc := run(t, tcmuTable, tcmuTable)
	if rc != 0 {
		t.Errorf("exit %d comparing a run with itself, want 0\n%s", rc, out)
	}
	if !strings.Contains(out, "Checks tcmu-runner passes and tcmu-runner fails: 0.") {
		t.Errorf("report:\n%s", out)
	}
}

func TestCompareBadInput(t *testing.T) {
	for name, bad := range map[string]string{
		"no title":   "| a | check | PASS |\n",
		"no checks":  "## ceph-iscsi on two gateways: gotcmu (x)\n\nHarness\n",
		"bad result": "## ceph-iscsi on two gateways: gotcmu (x)\n\nHarness\n\n| a | check | MAYBE |\n",
	} {
		if out, rc := run(t, tcmuTable, bad); rc != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", name, rc, out)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"gw-a: gotcmu started (x (nested) y) again": "gw-a: HANDLER started again",
		"gw-a: systemd started tcmu-runner's unit":  "gw-a: systemd started HANDLER's unit",
		"gw-a: gotcmu.service enabled":              "gw-a: HANDLER.service enabled",
		"target iqn.2003-01.org.gotcmu:gateway":     "target iqn.2003-01.org.gotcmu:gateway",
		"SIGKILLed gotcmu, then":                    "SIGKILLed HANDLER, then",
		"unbalanced ) paren (and an open one":       "unbalanced ) paren",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
