package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The testdata/lio-fileio files are real iscsi-test-cu -x output from the
// guest: SCSI.Inquiry, SCSI.Read10 and SCSI.CompareAndWrite against LIO
// fileio (18 tests, 16 passed; CompareAndWrite.Simple and .Miscompare fail).

func TestLoadRunReadsRealOutput(t *testing.T) {
	r, err := loadRun("testdata/lio-fileio")
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated {
		t.Error("complete file read as truncated")
	}
	if len(r.Tests) != 18 {
		t.Errorf("%d tests, want 18", len(r.Tests))
	}
	counts := map[status]int{}
	for _, tr := range r.Tests {
		counts[tr.Status]++
	}
	if counts[passed] != 16 || counts[failed] != 2 {
		t.Errorf("outcomes %v, want 16 passed and 2 failed", counts)
	}
	simple := r.Tests["CompareAndWrite.Simple"]
	if simple == nil || simple.Status != failed || len(simple.Failures) != 2 {
		t.Fatalf("CompareAndWrite.Simple = %+v, want failed with two failed assertions", simple)
	}
	if want := "test_compareandwrite_simple.c:71: CU_ASSERT_EQUAL(_r,0)"; simple.Failures[0] != want {
		t.Errorf("failure %q, want %q", simple.Failures[0], want)
	}
	if tr := r.Tests["Inquiry.Standard"]; tr == nil || tr.Status != passed {
		t.Errorf("Inquiry.Standard = %+v, want passed", tr)
	}
}

func TestLoadRunFromResultsFileFindsListing(t *testing.T) {
	r, err := loadRun("testdata/lio-fileio/CUnitAutomated-Results.xml")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tests) != 18 {
		t.Errorf("%d tests, want 18", len(r.Tests))
	}
}

const (
	cunitHead = `<?xml version="1.0" ?>
<!DOCTYPE CUNIT_TEST_RUN_REPORT SYSTEM "CUnit-Run.dtd">
<CUNIT_TEST_RUN_REPORT><CUNIT_HEADER/><CUNIT_RESULT_LISTING>
`
	cunitTail = "</CUNIT_RESULT_LISTING></CUNIT_TEST_RUN_REPORT>\n"
)

func pass(name string) string {
	return "<CUNIT_RUN_TEST_RECORD><CUNIT_RUN_TEST_SUCCESS><TEST_NAME> " + name + " </TEST_NAME></CUNIT_RUN_TEST_SUCCESS></CUNIT_RUN_TEST_RECORD>\n"
}

func fail(name, cond string) string {
	return "<CUNIT_RUN_TEST_RECORD><CUNIT_RUN_TEST_FAILURE><TEST_NAME> " + name +
		" </TEST_NAME><FILE_NAME> t.c </FILE_NAME><LINE_NUMBER> 9 </LINE_NUMBER><CONDITION> " + cond +
		" </CONDITION></CUNIT_RUN_TEST_FAILURE></CUNIT_RUN_TEST_RECORD>\n"
}

func suite(name string, records ...string) string {
	return "<CUNIT_RUN_SUITE><CUNIT_RUN_SUITE_SUCCESS><SUITE_NAME> " + name + " </SUITE_NAME>\n" +
		strings.Join(records, "") + "</CUNIT_RUN_SUITE_SUCCESS></CUNIT_RUN_SUITE>\n"
}

func suiteInitFailed(name string) string {
	return "<CUNIT_RUN_SUITE><CUNIT_RUN_SUITE_FAILURE><SUITE_NAME> " + name +
		" </SUITE_NAME><FAILURE_REASON> Suite Initialization Failed </FAILURE_REASON></CUNIT_RUN_SUITE_FAILURE></CUNIT_RUN_SUITE>\n"
}

func listing(suites map[string][]string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" ?><CUNIT_TEST_LIST_REPORT><CUNIT_ALL_TEST_LISTING>`)
	for s, tests := range suites {
		b.WriteString("<CUNIT_ALL_TEST_LISTING_SUITE><CUNIT_ALL_TEST_LISTING_SUITE_DEFINITION><SUITE_NAME> " + s +
			" </SUITE_NAME></CUNIT_ALL_TEST_LISTING_SUITE_DEFINITION><CUNIT_ALL_TEST_LISTING_SUITE_TESTS>")
		for _, t := range tests {
			b.WriteString("<TEST_CASE_DEFINITION><TEST_CASE_NAME> " + t + " </TEST_CASE_NAME></TEST_CASE_DEFINITION>")
		}
		b.WriteString("</CUNIT_ALL_TEST_LISTING_SUITE_TESTS></CUNIT_ALL_TEST_LISTING_SUITE>")
	}
	b.WriteString("</CUNIT_ALL_TEST_LISTING></CUNIT_TEST_LIST_REPORT>\n")
	return b.String()
}

// writeRun lays out one iscsi-test-cu output directory.
func writeRun(t *testing.T, results, list string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, resultsName), []byte(results), 0o644); err != nil {
		t.Fatal(err)
	}
	if list != "" {
		if err := os.WriteFile(filepath.Join(dir, listingName), []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCompare(t *testing.T) {
	baseline := cunitHead +
		suite("Read10", pass("Simple"), pass("BeyondEol")) +
		suite("Unmap", pass("Simple"), fail("Vpd", "CU_FAIL")) +
		suite("PrinReadKeys", pass("Simple")) +
		cunitTail
	baseList := listing(map[string][]string{"Read10": {"Simple", "BeyondEol"}, "Unmap": {"Simple", "Vpd"}, "PrinReadKeys": {"Simple"}})
	tests := []struct {
		name           string
		cand, candList string
		wantCode       int
		wantOut        []string
	}{
		{
			name: "same_results",
			cand: baseline, candList: baseList,
			wantCode: 0,
			wantOut:  []string{"| Read10 ", "2/2", "| **total** ", "3/4", "Left out", "PrinReadKeys"},
		},
		{
			name: "a_test_fails_on_the_candidate",
			cand: cunitHead + suite("Read10", pass("Simple"), fail("BeyondEol", "CU_ASSERT_EQUAL(a,b)"), fail("BeyondEol", "second")) +
				suite("Unmap", pass("Simple"), fail("Vpd", "CU_FAIL")) + cunitTail,
			wantCode: 1,
			wantOut:  []string{"REGRESSION Read10.BeyondEol: failed", "t.c:9: CU_ASSERT_EQUAL(a,b)", "t.c:9: second", "| Read10 ", "1/2"},
		},
		{
			name: "candidate_passes_more",
			cand: cunitHead + suite("Read10", pass("Simple"), pass("BeyondEol")) +
				suite("Unmap", pass("Simple"), pass("Vpd")) + cunitTail,
			wantCode: 0,
			wantOut:  []string{"1 tests pass on gotcmu and not on LIO fileio", "- Unmap.Vpd (LIO fileio: failed)", "4/4"},
		},
		{
			name:     "suite_setup_failed_on_the_candidate",
			cand:     cunitHead + suite("Read10", pass("Simple"), pass("BeyondEol")) + suiteInitFailed("Unmap") + cunitTail,
			candList: baseList,
			wantCode: 1,
			wantOut:  []string{"REGRESSION Unmap.Simple: not run", "| Unmap ", "0/2"},
		},
		{
			name:     "candidate_died_mid_run",
			cand:     cunitHead + suite("Read10", pass("Simple"), pass("BeyondEol")) + "<CUNIT_RUN_SUITE><CUNIT_RUN_SUITE_SUCCESS><SUITE_NAME> Unmap",
			candList: baseList,
			wantCode: 1,
			wantOut:  []string{"REGRESSION Unmap.Simple: not run", "WARNING: gotcmu results end early"},
		},
		{
			name:     "candidate_missing_a_test_entirely",
			cand:     cunitHead + suite("Read10", pass("Simple")) + suite("Unmap", pass("Simple"), fail("Vpd", "x")) + cunitTail,
			wantCode: 1,
			wantOut:  []string{"REGRESSION Read10.BeyondEol: not run"},
		},
		{
			name: "excluded_suite_may_differ",
			cand: cunitHead + suite("Read10", pass("Simple"), pass("BeyondEol")) +
				suite("Unmap", pass("Simple"), fail("Vpd", "CU_FAIL")) + suite("PrinReadKeys", fail("Simple", "x")) + cunitTail,
			wantCode: 0,
		},
		{
			name: "junit_candidate",
			cand: `<?xml version="1.0" encoding="UTF-8"?><testsuites>
<testsuite name="Read10"><testcase classname="Read10" name="Simple"/><testcase classname="Read10" name="BeyondEol"><failure message="CU_ASSERT(x)" type="Failure"/></testcase></testsuite>
<testsuite name="Unmap"><testcase name="Simple"/><testcase name="Vpd"><skipped/></testcase></testsuite></testsuites>`,
			wantCode: 1,
			wantOut:  []string{"REGRESSION Read10.BeyondEol: failed", "CU_ASSERT(x)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			baseDir := writeRun(t, baseline, baseList)
			candDir := writeRun(t, tc.cand, tc.candList)
			md := filepath.Join(t.TempDir(), "table.md")
			var out, errOut strings.Builder
			code := cmd([]string{"-md", md, baseDir, candDir}, &out, &errOut)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out.String(), errOut.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			saved, err := os.ReadFile(md)
			if err != nil || string(saved) != out.String() {
				t.Errorf("-md file differs from stdout (err %v)", err)
			}
		})
	}
}

func TestCompareRefusesUselessBaseline(t *testing.T) {
	good := writeRun(t, cunitHead+suite("Read10", pass("Simple"))+cunitTail, "")
	tests := []struct {
		name    string
		base    string
		wantErr string
	}{
		{"no_tests", cunitHead + cunitTail, "has no tests"},
		{"cut_short", cunitHead + suite("Read10", pass("Simple")) + "<CUNIT_RUN_SUITE>", "end early"},
		{"not_xml", "Segmentation fault\n", "results"},
		{"empty", "", "no CUnit or JUnit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			if code := cmd([]string{writeRun(t, tc.base, ""), good}, &out, &errOut); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.wantErr)
			}
		})
	}
}

func TestCommandUsage(t *testing.T) {
	var out, errOut strings.Builder
	if code := cmd([]string{"only-one"}, &out, &errOut); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if code := cmd([]string{"testdata/lio-fileio", "testdata/does-not-exist"}, &out, &errOut); code != 2 {
		t.Errorf("missing candidate: exit %d, want 2", code)
	}
}

func TestExcluded(t *testing.T) {
	globs := []string{"Prin*", "Prout*", "Reserve6*"}
	for s, want := range map[string]bool{
		"PrinReadKeys": true, "ProutRegister": true, "Reserve6": true, "Reserve6Extra": true,
		"Read10": false, "Inquiry": false, "PreventAllow": false,
	} {
		if got := excluded(globs, s); got != want {
			t.Errorf("excluded(%q) = %v, want %v", s, got, want)
		}
	}
}

// writeSuiteRuns lays out one directory per suite run, as guest-iscsi-cu.sh
// does: name -> results XML ("" for none) and seconds ("" for none).
func writeSuiteRuns(t *testing.T, suites map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	for name, files := range suites {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if files[0] != "" {
			if err := os.WriteFile(filepath.Join(dir, resultsName), []byte(files[0]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if files[1] != "" {
			if err := os.WriteFile(filepath.Join(dir, "seconds"), []byte(files[1]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestComparePerSuiteRuns(t *testing.T) {
	read10 := cunitHead + suite("Read10", pass("Simple"), pass("BeyondEol")) + cunitTail
	unmap := cunitHead + suite("Unmap", pass("Simple")) + cunitTail
	base := writeSuiteRuns(t, map[string][2]string{"SCSI.Read10": {read10, "4"}, "SCSI.Unmap": {unmap, "3"}})
	tests := []struct {
		name     string
		cand     map[string][2]string
		wantCode int
		wantOut  []string
	}{
		{
			name:     "merged_and_timed",
			cand:     map[string][2]string{"SCSI.Read10": {read10, "5"}, "SCSI.Unmap": {unmap, "40"}},
			wantCode: 0,
			wantOut:  []string{"| **total** ", "3/3", "Wall time of the compared suites: LIO fileio 7 s, gotcmu 45 s.", "- Unmap: 40 s (LIO fileio 3 s)"},
		},
		{
			name:     "suite_without_results",
			cand:     map[string][2]string{"SCSI.Read10": {read10, "5"}, "SCSI.Unmap": {"", "600"}},
			wantCode: 1,
			wantOut:  []string{"REGRESSION Unmap.Simple: not run", "WARNING: no gotcmu results for SCSI.Unmap"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := cmd([]string{base, writeSuiteRuns(t, tc.cand)}, &out, &errOut)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errOut.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestBaselineMissingASuiteIsRefused(t *testing.T) {
	read10 := cunitHead + suite("Read10", pass("Simple")) + cunitTail
	base := writeSuiteRuns(t, map[string][2]string{"SCSI.Read10": {read10, ""}, "SCSI.Unmap": {"", ""}})
	cand := writeSuiteRuns(t, map[string][2]string{"SCSI.Read10": {read10, ""}})
	var out, errOut strings.Builder
	if code := cmd([]string{base, cand}, &out, &errOut); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "no results for SCSI.Unmap") {
		t.Errorf("stderr %q does not name the missing suite", errOut.String())
	}
}

func TestLoadRunRejectsDirectoryWithoutResults(t *testing.T) {
	if _, err := loadRun(t.TempDir()); err == nil {
		t.Error("an empty directory loaded as a run")
	}
}
