// Command cucompare compares two runs of libiscsi's iscsi-test-cu test by
// test: a baseline (LIO's own fileio backstore) and a candidate (gotcmu's
// user:file) from the same guest boot.
//
//	cucompare [-base-name NAME] [-name NAME] [-exclude GLOBS] [-md FILE] BASE CANDIDATE
//
// BASE and CANDIDATE are what `iscsi-test-cu -x` leaves behind: a directory
// holding CUnitAutomated-Results.xml (and CUnitAutomated-Listing.xml), the
// results file itself, or a directory with one such directory per suite run
// (merged; a "seconds" file in each adds the suite's wall time). CUnit's
// automated XML and its JUnit variant are both read. The listing, when
// present, supplies every registered test, so a test that never ran
// (iscsi-test-cu crashed, a suite's set-up failed) counts as not passed
// instead of vanishing.
//
// It prints a markdown table — suite, baseline passed/total, candidate
// passed/total, totals — followed by every test that passes on the baseline
// and not on the candidate (a regression, with the candidate's failed
// assertions), every test the candidate passes where the baseline fails, and,
// with timings, the suites where the candidate is more than twice as slow.
//
// Exit status: 0 no regression; 1 at least one regression; 2 bad usage or a
// baseline that cannot serve as one (unreadable, empty, cut short, or missing
// a suite's results).
//
// Suites matching -exclude (default: the reservation suites LIO core answers
// itself, "Prin*,Prout*,Reserve6*") are left out of the comparison.
package main
