// Package lockgate decides, for one device served by several gateways,
// which writes may run here now: implicit ALUA over an exclusive lock, as
// tcmu-runner does it (tcmu_acquire_dev_lock, tcmu_notify_conn_lost).
// Several gateways export one image, each through its own target port
// group, and an image is written through one gateway at a time, the one
// holding the image's exclusive lock.
//
// The lock follows the I/O: the first write at a gateway without the lock
// is answered Busy while the gate takes the lock in the background
// (breaking the owner's lock fences the owner: Ceph blocklists its
// client), and the initiator's retries pass once it holds it. A gateway
// whose lock was taken finds out from its own I/O failing (ESHUTDOWN when
// blocklisted, EROFS when the lock is gone), answers Busy and reopens the
// image with a fresh client, which the blocklist does not cover. A gateway
// that loses its connection to the cluster (ETIMEDOUT) takes its target
// portal groups offline so that multipath moves to another gateway,
// reopens, and brings them back.
//
// Unlike tcmu-runner, a gateway that lost the lock while another gateway
// serves the image does not take it back for a hold-down period (see
// DefaultHoldDown): writes arriving meanwhile get Standby, which makes
// initiators send them elsewhere instead of bouncing the lock
// (tcmu-runner issues #341, #356, PR #477).
//
// The package never sees a SCSI command, status or sense: Gate.Admit is
// told whether a command changes the medium and answers a Verdict, which
// package handler turns into status and sense; SPC-4's rules for port
// group states stay in handler too, and reach the gate as Verdicts through
// Ports and Transition. It never touches configfs or the kernel itself:
// the Locker, Ports and TPGSwitch it is given do.
//
// A Gate is safe for concurrent use: Admit takes no lock while this
// gateway holds the image's lock; its workers call the Locker from one
// goroutine at a time, without the gate's mutex.
package lockgate
