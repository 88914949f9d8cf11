// Package netlink is gotcmu's only way to the TCM-USER generic netlink
// family of target_core_user: it hears of devices being added, removed and
// reconfigured, and answers each event so that the configfs write that
// caused it can finish. It is the only package that opens netlink sockets.
// It never opens a device, parses a uio name or builds SCSI data; callers
// get Go values (Event) and hand back an errno.
//
// # Protocol (drivers/target/target_core_user.c, tcmu-runner libtcmu.c)
//
// The kernel multicasts ADDED_DEVICE (on a write to enable),
// REMOVED_DEVICE (on rmdir) and RECONFIG_DEVICE (on writes to
// attrib/dev_config, dev_size or emulate_write_cache) to the group "config".
// Each carries DEVICE (the uio name), MINOR and DEVICE_ID; a RECONFIG
// carries exactly one of DEV_CFG, DEV_SIZE (after a PAD attribute on some
// architectures) or WRITECACHE. Once any daemon has sent SET_FEATURES with
// SUPP_KERN_CMD_REPLY=1, the configfs writer of a device enabled afterwards
// blocks until the daemon sends the matching *_DONE with CMD_STATUS and
// DEVICE_ID; the status becomes the result of the write.
//
// Use:
//
//	c, err := netlink.Dial(log)
//	err = c.SetFeatures(ctx)
//	err = c.Receive(ctx, func(ev netlink.Event) {
//		// hand ev to the device manager, which later calls
//		// c.Reply(ctx, ev, 0) or c.Reply(ctx, ev, -int32(errno))
//	})
//
// Every event needs an answer, also a malformed one (Event.Err != nil):
// reply -EINVAL when Event.HasDeviceID, else log it. A Dispatcher does all
// of that: it applies each device's events in order, different devices'
// concurrently (the kernel waits for each device's reply on its own), and
// answers every event:
//
//	d := netlink.NewDispatcher(ctx, log, c, apply, rescan)
//	err = c.Receive(ctx, d.Event)
//
// # When replies go missing
//
// The kernel waits for a reply without a timeout, uninterruptibly. If the
// daemon dies first, the writer hangs until a daemon writes the module
// parameters block_netlink=1, reset_netlink=1 (which fails the writer with
// EINTR) and later block_netlink=0: see ModuleParams, and do this at every
// start before serving events.
//
// An event can also be lost while the daemon runs: when the socket's
// receive buffer is full the kernel drops multicast messages and the next
// read fails with ENOBUFS, which Receive delivers as an Event wrapping
// ErrEventsLost. While it is full the kernel also counts the daemon as
// absent: netlink_broadcast delivers to no one, so a RECONFIG write fails
// with ESRCH (an ADDED waits all the same). Receive should therefore never
// be held up. Events are only notifications of state the kernel keeps, so
// the caller recovers by rescanning: list /sys/class/uio for devices named
// "tcm-user/..." and adopt those it does not serve, drop those that are
// gone, and re-read the settings of the rest. A writer whose ADDED, REMOVED
// or RECONFIG was lost still waits for its reply, whose DEVICE_ID the
// rescan cannot learn; releasing it takes the block_netlink/reset_netlink
// sequence above, which fails that one write with EINTR so that the
// administrator can retry it.
//
// # Trust
//
// Event contents are decoded defensively: bad lengths, missing or duplicate
// attributes, strings without their NUL or longer than the kernel can make
// give an Event with Err set, never a panic. Only the kernel and processes
// with CAP_NET_ADMIN can send to a generic netlink socket, so the check is
// against bugs and corruption rather than an authentication.
//
// A Client's Reply, SetFeatures and Close may be called from any goroutine;
// Receive runs on one.
package netlink
