// Command ackwriter proves that every write a block device acknowledged is
// still there afterwards, across faults such as the TCMU handler being killed
// and restarted under load.
//
// "ackwriter write" writes self-describing, checksummed blocks (magic, run
// id, block number, sequence number, CRC-32C over the whole block) with
// O_DIRECT|O_DSYNC from several goroutines at once (queue depth > 1). Before
// each write it appends "W <block> <seq>" to a log, and once the write has
// returned successfully — the device acknowledged it — "A <block> <seq>".
// A failed write (EIO, a timeout while the handler is down) is retried with a
// fresh sequence number until it succeeds or the device stays broken for
// longer than -give-up. Each block belongs to exactly one goroutine, so the
// writes to one block are ordered and its latest acknowledged sequence is
// well defined.
//
// "ackwriter verify" reads the region back and checks, per block, that it
// holds a valid block of this run whose sequence is at least the latest
// acknowledged one and was really issued for that block (a failed write may
// have landed: it is newer, and allowed). It prints acknowledged, verified
// and lost write counts and exits 1 if anything acknowledged was lost, or if
// nothing was acknowledged at all (a run that proved nothing).
//
// The log is plain text so that a failure can be read by eye; it is written
// with one write(2) per record to a file opened with O_APPEND, so a record is
// either whole or, for the very last one when the writer itself dies, a torn
// line that the verifier ignores.
package main
