"""A small seccomp deny-list for the sandbox, as the classic BPF program ``bwrap --seccomp``
loads (x86-64 only; elsewhere there is no filter and namespaces alone apply).

Denied with ``EPERM``: debugging or reading other processes (``ptrace``,
``process_vm_readv``/``writev``, ``pidfd_getfd``), new namespaces (``unshare``, ``setns``, and
``clone`` with any ``CLONE_NEW*`` flag), mounting, kernel keyrings, ``bpf``,
``perf_event_open``, ``userfaultfd``, ``io_uring``, module and kexec loading, and clock,
swap, reboot, quota, accounting and I/O-port calls. ``clone3`` gets ``ENOSYS``, so the C library
falls back to ``clone``, whose flags the filter can see. Any other architecture's calling
convention (e.g. x32 on an x86-64 kernel) kills the process.

:func:`no_fork_program` is a second, stricter filter the runner loads (through ``prctl``)
in every process that runs untrusted code -- the candidate's child and the tester -- in both
modes: new threads are allowed, new processes are not (``fork``, ``vfork`` and ``clone``
without ``CLONE_THREAD`` get ``EPERM``; ``os.fork()`` raises ``PermissionError``), so a
candidate is one process whose threads share one address space, and ``RLIMIT_AS`` bounds all
the memory it can hold (x86-64 and aarch64; elsewhere the runner sets ``RLIMIT_NPROC`` to 0).
"""

from __future__ import annotations

import platform
import struct

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_EPERM, _ENOSYS = 1, 38
_ERRNO = 0x00050000
_CLONE_NEW = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_CLONE, _CLONE3 = 56, 435
_CLONE_THREAD = 0x00010000
_AUDIT_ARCH_AARCH64 = 0xC00000B7
_NO_FORK = {
    # machine: (audit arch, clone, clone3, calls that always make a process)
    "x86_64": (_AUDIT_ARCH_X86_64, 56, 435, (57, 58)),  # fork, vfork
    "AMD64": (_AUDIT_ARCH_X86_64, 56, 435, (57, 58)),
    "aarch64": (_AUDIT_ARCH_AARCH64, 220, 435, ()),
    "arm64": (_AUDIT_ARCH_AARCH64, 220, 435, ()),
}

DENIED_X86_64 = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "vhangup": 153,
    "pivot_root": 155, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172,
    "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_getfd": 438, "mount_setattr": 442,
}  # fmt: skip
"""System calls the filter refuses, by name and x86-64 number."""


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The filter for this machine, or None where there is none (not x86-64 Linux)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    ops = [
        _op(_LD_ABS_W, 4),  # seccomp_data.arch
        _op(_JEQ, _AUDIT_ARCH_X86_64, 1, 0),
        _op(_RET, _KILL_PROCESS),
        _op(_LD_ABS_W, 0),  # seccomp_data.nr
        _op(_JGE, _X32_BIT, 0, 1),
        _op(_RET, _KILL_PROCESS),
        _op(_JEQ, _CLONE3, 0, 1),
        _op(_RET, _ERRNO | _ENOSYS),
        _op(_JEQ, _CLONE, 0, 4),
        _op(_LD_ABS_W, 16),  # low half of the flags argument
        _op(_JSET, _CLONE_NEW, 0, 1),
        _op(_RET, _ERRNO | _EPERM),
        _op(_RET, _ALLOW),
    ]
    for number in sorted(DENIED_X86_64.values()):
        ops += [_op(_JEQ, number, 0, 1), _op(_RET, _ERRNO | _EPERM)]
    ops.append(_op(_RET, _ALLOW))
    return b"".join(ops)


def no_fork_program(machine: str | None = None) -> bytes | None:
    """The filter that refuses new processes but allows threads, for ``machine`` (default:
    this one), or None where there is none (not Linux on x86-64 or aarch64)."""
    if machine is None:
        if platform.system() != "Linux":
            return None
        machine = platform.machine()
    if machine not in _NO_FORK:
        return None
    arch, clone, clone3, forks = _NO_FORK[machine]
    ops = [
        _op(_LD_ABS_W, 4),  # seccomp_data.arch
        _op(_JEQ, arch, 1, 0),
        _op(_RET, _KILL_PROCESS),
        _op(_LD_ABS_W, 0),  # seccomp_data.nr
    ]
    if arch == _AUDIT_ARCH_X86_64:
        ops += [_op(_JGE, _X32_BIT, 0, 1), _op(_RET, _KILL_PROCESS)]
    ops += [_op(_JEQ, clone3, 0, 1), _op(_RET, _ERRNO | _ENOSYS)]  # the C library falls back
    for number in forks:
        ops += [_op(_JEQ, number, 0, 1), _op(_RET, _ERRNO | _EPERM)]
    ops += [
        _op(_JEQ, clone, 0, 4),
        _op(_LD_ABS_W, 16),  # low half of the flags argument
        _op(_JSET, _CLONE_THREAD, 0, 1),
        _op(_RET, _ALLOW),
        _op(_RET, _ERRNO | _EPERM),
        _op(_RET, _ALLOW),
    ]
    return b"".join(ops)
