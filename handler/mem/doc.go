// Package mem is the RAM backend, user:mem with config string
// "mem/<label>": a sparse device in the daemon's memory, lost when the
// device or the daemon goes away. It exists to measure the handler with
// no storage below it (issue 7 compares it with LIO's rd_mcp ramdisk) and
// to run the SCSI emulation against real data in tests.
//
// Memory is taken in 1 MiB chunks from anonymous mappings on first write,
// so a 1 TiB device costs nothing until written, and is returned to the
// kernel at once when a whole chunk is discarded or the device closes.
// Chunks live outside the Go heap: the garbage collector neither scans
// them nor paces itself by them.
//
// Every operation is done in Submit, which calls Done before it returns.
// A memcpy is shorter than any hand-off to another goroutine, so the
// backend adds no scheduling to what the handler itself costs.
//
// A Backend is safe for concurrent use.
package mem
