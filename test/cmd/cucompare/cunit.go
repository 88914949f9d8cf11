package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// status is how one test ended in one run.
type status int

const (
	notRun status = iota // registered (listed) but no result recorded
	passed
	failed
	skipped // JUnit <skipped/>; CUnit has no such state
)

func (s status) String() string {
	switch s {
	case passed:
		return "passed"
	case failed:
		return "failed"
	case skipped:
		return "skipped"
	}
	return "not run"
}

// testResult is one test of one run.
type testResult struct {
	Suite, Name string
	Status      status
	Failures    []string // "file:line: condition" per failed assertion
}

// run is one iscsi-test-cu run, or the merge of one run per suite.
type run struct {
	Tests     map[string]*testResult // keyed by testKey(suite, name)
	Order     []string               // keys in the order first seen
	Truncated bool                   // a results file ended early
	Missing   []string               // per-suite directories without a results file
	Seconds   map[string]float64     // suite -> wall time, from per-suite "seconds" files
	Source    string
}

func testKey(suite, name string) string { return suite + "." + name }

func newRun(source string) *run {
	return &run{Tests: make(map[string]*testResult), Seconds: make(map[string]float64), Source: source}
}

func (r *run) test(suite, name string) *testResult {
	suite, name = strings.TrimSpace(suite), strings.TrimSpace(name)
	k := testKey(suite, name)
	t := r.Tests[k]
	if t == nil {
		t = &testResult{Suite: suite, Name: name}
		r.Tests[k] = t
		r.Order = append(r.Order, k)
	}
	return t
}

// record notes one result record. CUnit writes one FAILURE record per failed
// assertion and one SUCCESS record only for a test with none, so any failure
// record makes the test failed.
func (r *run) record(suite, name string, st status, failure string) {
	t := r.test(suite, name)
	switch {
	case st == failed:
		t.Status = failed
		if failure != "" {
			t.Failures = append(t.Failures, failure)
		}
	case t.Status != failed:
		t.Status = st
	}
}

const (
	resultsName = "CUnitAutomated-Results.xml"
	listingName = "CUnitAutomated-Listing.xml"
)

// loadRun reads a run from a results file (with its listing next to it, if
// there is one), from a directory holding iscsi-test-cu's XML, or from a
// directory of such directories, one per suite run, which it merges. In the
// last form a directory without results (the tool died or timed out before
// writing them) is recorded in Missing, and a "seconds" file in a directory
// gives the wall time of the suites found there.
func loadRun(path string) (*run, error) {
	r := newRun(path)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open test results: %w", err)
	}
	if !fi.IsDir() {
		listing := ""
		if base, ok := strings.CutSuffix(path, "-Results.xml"); ok {
			listing = base + "-Listing.xml"
		}
		return r, loadFiles(r, path, listing)
	}
	if hasReport(path) {
		return r, loadFiles(r, filepath.Join(path, resultsName), filepath.Join(path, listingName))
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read test results: %w", err)
	}
	subdirs := 0
	for _, e := range entries { // ReadDir sorts by name
		if !e.IsDir() {
			continue
		}
		subdirs++
		dir := filepath.Join(path, e.Name())
		seen := len(r.Order)
		err := loadFiles(r, filepath.Join(dir, resultsName), filepath.Join(dir, listingName))
		if errors.Is(err, os.ErrNotExist) {
			r.Missing = append(r.Missing, e.Name())
		} else if err != nil {
			return nil, err
		}
		if b, err := os.ReadFile(filepath.Join(dir, "seconds")); err == nil {
			if secs, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
				for _, k := range r.Order[seen:] {
					r.Seconds[r.Tests[k].Suite] = secs
				}
			}
		}
	}
	if subdirs == 0 {
		return nil, fmt.Errorf("open test results: no %s in %s or in a directory under it", resultsName, path)
	}
	return r, nil
}

// hasReport reports whether dir holds iscsi-test-cu's XML itself.
func hasReport(dir string) bool {
	for _, name := range []string{resultsName, listingName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// loadFiles adds a results file, and its listing if there is one, to r. A
// missing results file is an error for which errors.Is(err, os.ErrNotExist)
// holds; the listed tests are registered (as not run) even then.
func loadFiles(r *run, results, listing string) error {
	if listing != "" {
		f, err := os.Open(listing)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("open test listing: %w", err)
		default:
			err = parseListing(f, r)
			f.Close()
			if err != nil {
				return fmt.Errorf("read test listing %s: %w", listing, err)
			}
		}
	}
	f, err := os.Open(results)
	if err != nil {
		return fmt.Errorf("open test results: %w", err)
	}
	defer f.Close()
	if err := parseResults(f, r); err != nil {
		return fmt.Errorf("read test results %s: %w", results, err)
	}
	return nil
}

// CUnit automated results (CUnit-Run.dtd).
type cunitSuite struct {
	Success *struct {
		Name    string `xml:"SUITE_NAME"`
		Records []struct {
			Success *struct {
				Name string `xml:"TEST_NAME"`
			} `xml:"CUNIT_RUN_TEST_SUCCESS"`
			Failure *struct {
				Name      string `xml:"TEST_NAME"`
				File      string `xml:"FILE_NAME"`
				Line      string `xml:"LINE_NUMBER"`
				Condition string `xml:"CONDITION"`
			} `xml:"CUNIT_RUN_TEST_FAILURE"`
		} `xml:"CUNIT_RUN_TEST_RECORD"`
	} `xml:"CUNIT_RUN_SUITE_SUCCESS"`
	Failure *struct {
		Name   string `xml:"SUITE_NAME"`
		Reason string `xml:"FAILURE_REASON"`
	} `xml:"CUNIT_RUN_SUITE_FAILURE"`
}

// JUnit, as CUnit writes it with CU_automated_enable_junit_xml.
type junitSuite struct {
	Name  string `xml:"name,attr"`
	Cases []struct {
		Name    string `xml:"name,attr"`
		Failure *struct {
			Message string `xml:"message,attr"`
			Text    string `xml:",chardata"`
		} `xml:"failure"`
		Error *struct {
			Message string `xml:"message,attr"`
		} `xml:"error"`
		Skipped *struct{} `xml:"skipped"`
	} `xml:"testcase"`
}

// parseResults adds every result in a results file to r. The file is read
// element by element, so a file cut short (the tool died mid-run) still
// yields every suite that was complete, and marks the run truncated.
func parseResults(rd io.Reader, r *run) error {
	d := xml.NewDecoder(rd)
	sawRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if !sawRoot {
				return errors.New("no CUnit or JUnit test report in it")
			}
			return nil
		}
		if err != nil {
			if !sawRoot {
				return err
			}
			r.Truncated = true
			return nil
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "CUNIT_TEST_RUN_REPORT", "testsuites":
			sawRoot = true
		case "CUNIT_RUN_SUITE":
			sawRoot = true
			var s cunitSuite
			if err := d.DecodeElement(&s, &se); err != nil {
				r.Truncated = true
				return nil
			}
			addCUnitSuite(r, s)
		case "testsuite":
			sawRoot = true
			var s junitSuite
			if err := d.DecodeElement(&s, &se); err != nil {
				r.Truncated = true
				return nil
			}
			addJUnitSuite(r, s)
		}
	}
}

func addCUnitSuite(r *run, s cunitSuite) {
	if s.Failure != nil {
		// The suite's set-up failed: none of its tests ran. The listing, if
		// read, already holds them as not run.
		return
	}
	if s.Success == nil {
		return
	}
	for _, rec := range s.Success.Records {
		switch {
		case rec.Failure != nil:
			f := rec.Failure
			r.record(s.Success.Name, f.Name, failed, fmt.Sprintf("%s:%s: %s",
				strings.TrimSpace(f.File), strings.TrimSpace(f.Line), strings.TrimSpace(f.Condition)))
		case rec.Success != nil:
			r.record(s.Success.Name, rec.Success.Name, passed, "")
		}
	}
}

func addJUnitSuite(r *run, s junitSuite) {
	for _, c := range s.Cases {
		switch {
		case c.Failure != nil:
			msg := strings.TrimSpace(c.Failure.Message)
			if msg == "" {
				msg = strings.TrimSpace(c.Failure.Text)
			}
			r.record(s.Name, c.Name, failed, msg)
		case c.Error != nil:
			r.record(s.Name, c.Name, failed, strings.TrimSpace(c.Error.Message))
		case c.Skipped != nil:
			r.record(s.Name, c.Name, skipped, "")
		default:
			r.record(s.Name, c.Name, passed, "")
		}
	}
}

// CUnit test listing (CUnit-List.dtd).
type cunitListing struct {
	Suites []struct {
		Name  string `xml:"CUNIT_ALL_TEST_LISTING_SUITE_DEFINITION>SUITE_NAME"`
		Tests []struct {
			Name string `xml:"TEST_CASE_NAME"`
		} `xml:"CUNIT_ALL_TEST_LISTING_SUITE_TESTS>TEST_CASE_DEFINITION"`
	} `xml:"CUNIT_ALL_TEST_LISTING>CUNIT_ALL_TEST_LISTING_SUITE"`
}

// parseListing registers every listed test in r as not run.
func parseListing(rd io.Reader, r *run) error {
	var l cunitListing
	if err := xml.NewDecoder(rd).Decode(&l); err != nil {
		return err
	}
	for _, s := range l.Suites {
		for _, t := range s.Tests {
			r.test(s.Name, t.Name)
		}
	}
	return nil
}
