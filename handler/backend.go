package handler

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/uio"
)

// Op is the kind of operation an IO asks a Backend to perform.
type Op uint8

const (
	// OpRead fills Iov with Len bytes read from Off.
	OpRead Op = iota + 1
	// OpWrite writes the Len bytes in Iov at Off; with FUA the data must
	// be on stable storage before Done.
	OpWrite
	// OpFlush makes every write completed so far stable.
	OpFlush
	// OpDiscard deallocates [Off, Off+Len). Only sent when Limits.Discard.
	OpDiscard
	// OpWriteSame writes the one logical block in Iov repeatedly over
	// [Off, Off+Len). Only sent when Limits.WriteSame; otherwise the
	// handler emulates it with OpWrite.
	OpWriteSame
	// OpCompareAndWrite compares [Off, Off+Len) with the first Len bytes of
	// Iov and, only if they are equal, writes the second Len bytes, atomically
	// with respect to other writes. On a mismatch Done gets an error for which
	// errors.Is(err, syscall.EILSEQ) holds, and MiscompareOffset is set to the
	// offset of the first differing byte from Off. Only sent when
	// Limits.CompareAndWrite; otherwise the handler emulates it.
	OpCompareAndWrite
)

// String names the operation the way errors and logs say it ("compare
// and write").
func (op Op) String() string {
	switch op {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFlush:
		return "flush"
	case OpDiscard:
		return "discard"
	case OpWriteSame:
		return "write same"
	case OpCompareAndWrite:
		return "compare and write"
	}
	return fmt.Sprintf("operation %d", uint8(op))
}

// Errors every backend may return as they are, declared once so that each
// backend says the same.
var (
	// ErrMiscompare fails an OpCompareAndWrite whose data differs; the
	// backend sets MiscompareOffset first. It is preallocated: VMware's
	// ATS heartbeat makes miscompares routine, not exceptional.
	ErrMiscompare = fmt.Errorf("compare and write: data differs: %w", syscall.EILSEQ)
	// ErrBackendClosed fails an IO submitted after the backend's Close.
	ErrBackendClosed = fmt.Errorf("backend is closed: %w", syscall.ENXIO)
)

// IO is one asynchronous operation handed to a Backend. The handler owns
// it and reuses it after Done, so a backend must not keep it (or Iov)
// past calling Done.
//
// The buffers in Iov are slices of the device's mmapped data area, not of
// the Go heap: a backend may hand pointers to them straight to C code for
// the duration of the operation.
type IO struct {
	Op  Op
	Off int64 // byte offset on the device
	Len int64 // bytes covered on the device
	Iov [][]byte
	FUA bool

	// MiscompareOffset is set by the backend for OpCompareAndWrite.
	MiscompareOffset int64

	// Fast, when its Ring is set, names the command this IO completes,
	// for a backend that can answer it from a thread of its own without
	// entering Go: on success it writes GOOD to the ring and rings the
	// doorbell (uio/cring.h's gotcmu_ring_complete and gotcmu_ring_kick on
	// Fast), and later, from a goroutine, calls Answered instead of Done.
	// The handler sets it only for a read or write whose success needs
	// nothing more from it; a backend may ignore it and call Done.
	Fast uio.FastAnswer

	done     func(*IO, error)
	answered bool
	at       time.Time
}

// NewIO returns an IO whose Done calls done. The handler makes one per
// command slot and reuses it, so completing costs no allocation.
func NewIO(done func(*IO, error)) *IO { return &IO{done: done} }

// Done reports the result of the operation. It must be called exactly
// once per Submit, from any goroutine, possibly before Submit returns.
// Errors keep their errno (wrap a syscall.Errno): the handler turns them
// into SCSI status and sense, nothing below it does.
func (io *IO) Done(err error) { io.answered = false; io.done(io, err) }

// Answered is Done(nil) for an IO whose command the backend has answered
// through Fast at time at: the handler does its bookkeeping (the command's
// latency up to at) and writes nothing to the ring.
func (io *IO) Answered(at time.Time) {
	io.answered, io.at = true, at
	io.done(io, nil)
}

// AnswerWaker is a Backend that answers commands on threads of its own
// (IO.Fast) and hands the answered IOs to the handler lazily, when the
// device's loop wakes for something else. While any WakeOnAnswer(true) is
// in force (counted: each is undone by one WakeOnAnswer(false)) it hands
// over each one at once, so that a device waiting for its IO to drain does
// not wait for the loop's periodic wake-up.
type AnswerWaker interface {
	WakeOnAnswer(on bool)
}

// Backend serves one device's data. Submit starts an operation and must
// not block for long: a backend runs the operation asynchronously (librbd
// aio, a worker pool) and calls io.Done when it finishes. Submit is
// called concurrently for independent IOs; ordering between IOs in flight
// is not guaranteed, as with SCSI simple task attributes.
type Backend interface {
	Submit(io *IO)
	// Limits describes what the backend can do natively.
	Limits() Limits
	// Close waits for nothing: the handler has completed every IO before
	// calling it.
	Close() error
}

// Limits tells the handler which operations a backend supports natively
// and with what granularity; the handler advertises them in the Block
// Limits and Logical Block Provisioning VPD pages.
type Limits struct {
	// Discard means OpDiscard is supported (thin provisioning, UNMAP).
	Discard bool
	// DiscardZeroes means deallocated blocks read back as zeros (LBPRZ).
	DiscardZeroes bool
	// WriteSame and CompareAndWrite mean the ops are native.
	WriteSame       bool
	CompareAndWrite bool
	// DiscardGranularity and DiscardAlignment, in bytes (0: any).
	DiscardGranularity uint32
	DiscardAlignment   uint32
	// MaxDiscardBytes and MaxWriteSameBytes bound one operation (0: no
	// limit beyond the handler's own).
	MaxDiscardBytes   uint64
	MaxWriteSameBytes uint64
	// NonRotational is reported in the Block Device Characteristics page.
	NonRotational bool
	// StableWrites means a write is on stable storage when it completes
	// (librbd without its cache: the OSDs acknowledge only persisted
	// writes). The handler then asks for no FUA, which would otherwise cost
	// a flush per write while the write cache is off (WCE=0, TCMU's
	// default).
	StableWrites bool
}

// LBAStatuser is implemented by backends that know which ranges are
// allocated (GET LBA STATUS). Status reports whether the byte range
// starting at off is mapped and how many bytes from off share that state
// (at most length). It may block; the handler calls it off the I/O path.
type LBAStatuser interface {
	Status(ctx context.Context, off, length int64) (mapped bool, extent int64, err error)
}

// Resizer is implemented by backends that must act when the kernel changes
// the device size (RECONFIG_DEVICE with DEV_SIZE). Returning an error
// refuses the resize.
type Resizer interface {
	Resize(size int64) error
}

// DeviceInfo is what a handler needs to open a device's backend.
type DeviceInfo struct {
	// Name is the configfs device name (the backstore name).
	Name string
	// Config is the config string after "<subtype>/", e.g. "pool/image;id=x"
	// for rbd/pool/image;id=x.
	Config    string
	Size      int64
	BlockSize uint32
	// MaxSectors is hw_max_sectors: the largest transfer, in blocks.
	MaxSectors uint32
	// WriteCache is emulate_write_cache.
	WriteCache bool
}

// Handler is one backstore subtype (user:file, user:rbd, ...), as listed
// over D-Bus and matched against the first element of a config string.
type Handler struct {
	// Subtype is the name after "user:", and the config string prefix.
	Subtype string
	// ConfigDesc is the help text targetcli shows for the config string.
	ConfigDesc string
	// CheckConfig validates a config string without the subtype prefix
	// ("pool/image;..."); the message of its error is shown to the
	// operator. It must return within ctx's deadline.
	CheckConfig func(ctx context.Context, config string) error
	// Open opens the backend of a device.
	Open func(ctx context.Context, info DeviceInfo, log zerolog.Logger) (Backend, error)
}

// Caller identifies who asked for a CheckConfig over D-Bus. The D-Bus
// service puts it in the context it passes to Handler.CheckConfig.
//
// A CheckConfig whose Caller has a UID other than 0 must answer only what
// that caller could find out by itself: the D-Bus service runs the check on
// an OS thread that has the caller's filesystem credentials, so files opened
// from the calling goroutine are checked with the caller's permissions, but
// work handed to other goroutines or threads (librados reading a keyring, a
// worker pool) runs as the daemon and must be skipped for such callers.
// A context without a Caller means the daemon itself is asking.
type Caller struct {
	UID  uint32
	GIDs []uint32
}

type callerKey struct{}

// WithCaller returns a context carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller that ctx carries, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}
