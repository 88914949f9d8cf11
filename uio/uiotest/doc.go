// Package uiotest is a fake TCMU kernel for tests, in the style of
// net/http/httptest: it fakes only the peer, and the production ring code
// (uio.Ring) runs unchanged against it.
//
// A Kernel owns an 8-byte-aligned region laid out byte for byte as
// target_core_user.c lays out its mapping: the mailbox at 0 (version 2,
// flags 0x0f), the command ring at 128 and the data area after it.
// Submit queues a command as queue_cmd_ring does: entry size
// max(48+16n, 112) + round_up(cdb length, 8), the CDB inside the entry
// with an absolute cdb_off, iovecs as absolute offsets of data blocks
// (adjacent blocks merged), a PAD entry when the entry does not fit before
// the end of the ring, cmd_ids the lowest free in 1..65535 as xa_alloc
// gives them, and cmd_head published with a release store. A full ring or
// data area is reported (ErrRingFull, ErrDataFull) instead of queued, and
// SubmitWait waits for space.
//
// The doorbell the Kernel gives its uio.Ring runs tcmu_handle_completions:
// it walks from its last-cleaned position to cmd_tail, skips PAD and TMR
// entries and looks every CMD slot up by the cmd_id written in it. An
// unknown cmd_id marks the ring broken and fails the test through the
// testing.TB given to New, as does any other breach of the protocol the
// kernel would notice (a cmd_tail off an entry boundary or past cmd_head,
// a rewritten len_op, KEEP_BUF, which gotcmu never uses). Each completed
// command is delivered on Completions with its status, sense, read_len and
// the Data-In bytes the kernel would copy back to the initiator.
//
// The Kernel implements uio.Waiter with the semantics of uio.Device, so a
// device loop written for uio.Device runs against it unchanged.
//
// What the fake does not model: data pages are ordinary memory (no SIGBUS
// for pages without a pending iovec), the qfull and tmr wait queues
// (Submit reports instead of queueing), command timeouts, block_dev and
// KEEP_BUF. Data-In buffers are filled with PoisonByte when a command is
// queued, where the kernel leaves whatever the blocks last held, so a
// handler that does not fill a read buffer is caught (Config.NoDataIn turns
// this and the copy-out off, for benchmarks).
package uiotest
