#!/usr/bin/python3
"""Try, one by one, what the seccomp lines of gotcmu.service forbid; print one line per try.

test/vm/guest-systemd.sh runs this twice: as a plain root process (every try must succeed there,
or the probe proves nothing) and as ExecStart of a copy of the installed gotcmu.service (every try
must be refused, with the errno systemd documents for that line). Seccomp filters cannot be read
back from outside a process, so this is how the test shows those lines in force; gotcmu's own
/proc/<pid>/status (Seccomp: 2, the same number of filters) ties the result to gotcmu.

Each try is chosen so that no missing capability refuses it first: a user namespace, personality(),
chmod u+s on one's own file and ptrace(PTRACE_TRACEME) need none; realtime scheduling needs none
under the LimitRTPRIO=1 the probe's unit adds; AF_PACKET is refused EPERM without CAP_NET_RAW but
EAFNOSUPPORT by RestrictAddressFamilies.

Output: "<line> allowed: <what>" or "<line> denied: <what>", then "seccomp_filters N".
Raw syscalls by number through ctypes: no build step, and the i386 call needs a few bytes of
machine code run in a child.
"""
import ctypes
import ctypes.util
import mmap
import os
import signal
import socket
import sys
import tempfile

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.syscall.restype = ctypes.c_long

SYS_PTRACE = 101
SYS_PERSONALITY = 135
CLONE_NEWUSER = 0x10000000
PER_LINUX32 = 0x0008


def errno_name():
    e = ctypes.get_errno()
    return os.strerror(e) if e else "no errno"


def report(line, ok, what):
    print(f"{line} {'allowed' if ok else 'denied'}: {what}", flush=True)


def in_child(fn):
    """Run fn() in a forked child; return (exit code or None, signal or None)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def namespaces():
    def child():
        return 0 if libc.unshare(CLONE_NEWUSER) == 0 else ctypes.get_errno()
    code, sig = in_child(child)
    report("RestrictNamespaces=yes", code == 0, f"unshare(CLONE_NEWUSER) exit={code} signal={sig}"
           + (f" ({os.strerror(code)})" if code else ""))


def realtime():
    def child():
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            return 0
        except OSError as e:
            return e.errno
    code, sig = in_child(child)
    report("RestrictRealtime=yes", code == 0, f"sched_setscheduler(SCHED_FIFO, 1) exit={code} signal={sig}"
           + (f" ({os.strerror(code)})" if code else ""))


def suid():
    fd, path = tempfile.mkstemp(prefix="sandbox-probe.")
    os.close(fd)
    try:
        os.chmod(path, 0o4755)
        report("RestrictSUIDSGID=yes", True, "chmod u+s on its own file")
    except OSError as e:
        report("RestrictSUIDSGID=yes", False, f"chmod u+s on its own file: {e.strerror}")
    finally:
        os.unlink(path)


def personality():
    def child():
        r = libc.syscall(SYS_PERSONALITY, PER_LINUX32)
        return 0 if r >= 0 else ctypes.get_errno()
    code, sig = in_child(child)
    report("LockPersonality=yes", code == 0, f"personality(PER_LINUX32) exit={code} signal={sig}"
           + (f" ({os.strerror(code)})" if code else ""))


def families():
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.close()
        report("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", True, "socket(AF_PACKET)")
    except OSError as e:
        # EPERM would be the missing CAP_NET_RAW, not the address family filter.
        report("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
               e.errno not in (97,), f"socket(AF_PACKET): {e.strerror} (errno {e.errno}; "
               "EAFNOSUPPORT is the filter)")
    for fam, name in ((socket.AF_UNIX, "AF_UNIX"), (socket.AF_INET, "AF_INET"), (socket.AF_INET6, "AF_INET6")):
        try:
            socket.socket(fam, socket.SOCK_STREAM).close()
            print(f"family {name} usable", flush=True)
        except OSError as e:
            print(f"family {name} refused: {e.strerror}", flush=True)


def syscall_filter():
    def child():
        r = libc.syscall(SYS_PTRACE, 0, 0, 0, 0)  # PTRACE_TRACEME: @debug, outside @system-service
        return 0 if r == 0 else ctypes.get_errno()
    code, sig = in_child(child)
    what = f"ptrace(PTRACE_TRACEME) exit={code} signal={sig}" + (f" ({os.strerror(code)})" if code else "")
    report("SystemCallFilter=@system-service", code == 0, what)
    # SystemCallErrorNumber=EPERM: refused with EPERM, not killed by SIGSYS (the default action).
    if code != 0:
        report("SystemCallErrorNumber=EPERM", not (code == 1 and sig is None), what)


def architectures():
    # mov eax, 20 (getpid on i386); int 0x80; ret
    code_bytes = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"

    def child():
        buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        buf.write(code_bytes)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        r = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
        return 0 if r == os.getpid() else 3
    code, sig = in_child(child)
    report("SystemCallArchitectures=native", code == 0,
           f"i386 getpid through int 0x80 exit={code} signal={sig and signal.Signals(sig).name}")


def main():
    namespaces()
    realtime()
    suid()
    personality()
    families()
    syscall_filter()
    architectures()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("Seccomp:", "Seccomp_filters:", "NoNewPrivs:", "CapBnd:")):
                k, v = line.split(":", 1)
                print(f"status {k} {v.strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
