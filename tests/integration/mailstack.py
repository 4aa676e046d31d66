"""A private postfix + dovecot mail stack for the integration tests.

`MailStack` renders the templates under ``tests/integration/stack/`` and runs
one isolated instance of each daemon on free loopback ports:

* postfix: an MX listener (no auth), submission (STARTTLS required, SASL) and
  smtps (implicit TLS, SASL); ``example.test`` is delivered to dovecot via LMTP.
* dovecot: IMAP/POP3 with STARTTLS/STLS and implicit-TLS variants, SASL for
  postfix, LMTP with a global Sieve script that files ``X-Test-Junk: yes``
  messages into ``Junk``.

Certificates come from a throw-away `trustme` CA (`MailStack.ca_pem_path`).
Logs go to the base directory; configuration, queue and mailboxes go to the
"spool", which must be reachable by the daemons' unprivileged users (see
`MailStack.spool_dir`). The distro's configuration and services are never
touched. Needs root.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import string
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trustme

TEMPLATE_DIR = Path(__file__).with_name("stack")
DEFAULT_USERS: dict[str, str] = {"seed@example.test": "seed-password"}
MAIL_DOMAIN = "example.test"
REQUIRED_BINARIES = ("postfix", "dovecot", "doveadm")

# Existing accounts that may own the virtual mailboxes, in order of preference;
# VMAIL_USER is created only when none of them exists.
MAIL_USER_CANDIDATES = ("vmail", "mail")
VMAIL_USER = "vmail"

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL; dovecot
# adds up to ~25 bytes below its run dir (e.g. "login/imap-urlauth-worker").
_MAX_SOCKET_DIR_LENGTH = 107 - 30
# postfix stalls for about 2 s on config and map files younger than that, so
# written files are back-dated well beyond it.
_BACKDATE_SECONDS = 10.0
_POLL_INTERVAL = 0.05


class MailStackError(RuntimeError):
    """The stack could not be configured, started or stopped."""


# Module helpers -----------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """Absolute path of a tool, also looking in sbin dirs missing from PATH."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search_path)


def missing_binaries() -> list[str]:
    """Names of the daemons' command-line tools that are not installed."""
    return [name for name in REQUIRED_BINARIES if find_binary(name) is None]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel considers free right now; every socket stays bound until
    all are chosen, so no port comes back twice."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def ensure_mail_user() -> tuple[int, int]:
    """uid/gid that owns the virtual mailboxes, creating a system user if needed."""
    for name in MAIL_USER_CANDIDATES:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            VMAIL_USER,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    entry = pwd.getpwnam(VMAIL_USER)
    return entry.pw_uid, entry.pw_gid


def world_searchable(path: Path) -> bool:
    """True if any user can reach `path` (o+x on it and on every ancestor)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def backdate(*paths: Path, seconds: float = _BACKDATE_SECONDS) -> None:
    """Make files look old so that postfix does not wait for them to settle."""
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


def render_template(name: str, values: Mapping[str, object]) -> str:
    """`string.Template` substitution of a file from the stack/ directory."""
    template = string.Template((TEMPLATE_DIR / name).read_text())
    return template.substitute({key: str(value) for key, value in values.items()})


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = _POLL_INTERVAL
) -> None:
    """Poll `condition` until it holds; MailStackError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise MailStackError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def read_banner(
    host: str, port: int, context: ssl.SSLContext | None = None, timeout: float = 2.0
) -> bytes:
    """First line a server sends, or b"" if it is not (yet) answering."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            if context is None:
                return raw.makefile("rb").readline()
            with context.wrap_socket(raw, server_hostname=host) as wrapped:
                return wrapped.makefile("rb").readline()
    except (OSError, ssl.SSLError):
        return b""


def port_refuses(host: str, port: int) -> bool:
    """True once nothing listens on host:port any more."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<unreadable: {exc}>"


def _write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    os.chmod(path, mode)
    backdate(path)


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _read_proc(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def _pid_alive(pid: int) -> bool:
    # A zombie has exited already; it only waits for its parent to reap it.
    status = _read_proc(pid, "stat")
    return bool(status) and status.rsplit(b")", 1)[-1].split()[0] != b"Z"


def _running_pid(pidfile: Path, command: bytes) -> int | None:
    """pid from a daemon's pid file, if that process still runs `command`."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not _pid_alive(pid) or command not in _read_proc(pid, "cmdline"):
        return None  # stale file, perhaps with a recycled pid
    return pid


# The stack -------------------------------------------------------------------------


@dataclass
class MailStack:
    """One private postfix + dovecot instance.

    Ports are chosen when the object is created, so they can be read before
    `start()`. Use as a context manager, or call `start()`, `stop()` and
    finally `cleanup()`.
    """

    base_dir: Path
    users: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_USERS))
    host: str = "127.0.0.1"
    mail_debug: bool = False
    startup_timeout: float = 15.0

    submission_port: int = field(init=False)
    smtps_port: int = field(init=False)
    mx_port: int = field(init=False)
    imap_port: int = field(init=False)
    imaps_port: int = field(init=False)
    pop3_port: int = field(init=False)
    pop3s_port: int = field(init=False)
    instance_name: str = field(init=False)
    spool_dir: Path = field(init=False)
    recipient_access: dict[str, str] = field(init=False, default_factory=dict)
    start_seconds: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).absolute()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (
            self.submission_port,
            self.smtps_port,
            self.mx_port,
            self.imap_port,
            self.imaps_port,
            self.pop3_port,
            self.pop3s_port,
        ) = free_ports(7, self.host)
        self.instance_name = f"mailstack-{secrets.token_hex(4)}"
        self.users = {address.lower(): password for address, password in self.users.items()}
        self._ca = trustme.CA(organization_name="Delivery Monitor test CA")
        self._configured = False
        self._mail_uid = self._mail_gid = -1
        # The daemons' unprivileged users (postfix, the mail user) must reach
        # the spool by absolute path. pytest's tmp dirs are 0700 and any pytest
        # session start re-applies that to /tmp/pytest-of-<user>, so such a
        # base dir gets a spool of its own in the system tmp dir instead.
        self._private_spool = not world_searchable(self.base_dir)
        if self._private_spool:
            self.spool_dir = Path(tempfile.gettempdir()).absolute() / self.instance_name
        else:
            self.spool_dir = self.base_dir / "spool"

    # Paths and clients -----------------------------------------------------------

    @property
    def ca_pem_path(self) -> Path:
        """CA certificate that signed every server certificate of the stack."""
        return self.spool_dir / "tls" / "ca.pem"

    @property
    def cert_path(self) -> Path:
        return self.spool_dir / "tls" / "server-chain.pem"

    @property
    def key_path(self) -> Path:
        return self.spool_dir / "tls" / "server-key.pem"

    @property
    def mail_root(self) -> Path:
        return self.spool_dir / "mail"

    @property
    def dovecot_dir(self) -> Path:
        return self.spool_dir / "dovecot"

    @property
    def dovecot_config(self) -> Path:
        return self.dovecot_dir / "dovecot.conf"

    @property
    def dovecot_run_dir(self) -> Path:
        return self.dovecot_dir / "run"

    @property
    def passwd_file(self) -> Path:
        return self.dovecot_dir / "passwd"

    @property
    def sieve_dir(self) -> Path:
        return self.dovecot_dir / "sieve"

    @property
    def postfix_config_dir(self) -> Path:
        return self.spool_dir / "postfix"

    @property
    def postfix_queue_dir(self) -> Path:
        return self.spool_dir / "postfix-queue"

    @property
    def postfix_data_dir(self) -> Path:
        return self.spool_dir / "postfix-data"

    @property
    def lmtp_socket(self) -> Path:
        # In postfix's queue: its daemons work chdir'ed there and reach the
        # socket as "private/dovecot-lmtp".
        return self.postfix_queue_dir / "private" / "dovecot-lmtp"

    @property
    def sasl_socket(self) -> Path:
        return self.postfix_queue_dir / "private" / "dovecot-auth"

    @property
    def dovecot_log(self) -> Path:
        return self.base_dir / "dovecot.log"

    @property
    def postfix_log(self) -> Path:
        return self.base_dir / "postfix.log"

    @property
    def commands_log(self) -> Path:
        """Output of every postfix/dovecot command the stack ran."""
        return self.base_dir / "commands.log"

    def maildir_for(self, address: str) -> Path:
        """Maildir of a virtual user (exists after its first delivery or login)."""
        local, _, domain = address.lower().partition("@")
        return self.mail_root / domain / local / "Maildir"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the stack's CA."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

    # Lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Configure (first time only), start dovecot, then postfix."""
        started = time.monotonic()
        if not self._configured:
            self.configure()
        try:
            self.start_dovecot()
            self.start_postfix()
        except BaseException:
            with contextlib.suppress(MailStackError):
                self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop both daemons and anything left of them; safe to call repeatedly."""
        errors: list[str] = []
        for stopper in (self.stop_postfix, self.stop_dovecot):
            try:
                stopper()
            except Exception as exc:  # the other daemon must be stopped regardless
                errors.append(f"{stopper.__name__}: {exc}")
        if errors:
            raise MailStackError("; ".join(errors))

    def cleanup(self) -> None:
        """Delete a spool kept outside `base_dir` (call after `stop()`)."""
        if self._private_spool:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            (self.base_dir / "spool").unlink(missing_ok=True)
        self._configured = False

    def __enter__(self) -> MailStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            self.cleanup()

    def configure(self) -> None:
        """Write certificates, users, maps and daemon configuration."""
        missing = missing_binaries()
        if missing:
            raise MailStackError(
                f"{', '.join(missing)} not installed: run scripts/install-system-deps.sh"
            )
        if os.geteuid() != 0:
            raise MailStackError("postfix and dovecot need root to start")
        if len(str(self.postfix_queue_dir / "private").encode()) > _MAX_SOCKET_DIR_LENGTH:
            raise MailStackError(f"spool dir too deep for unix socket paths: {self.spool_dir}")

        self._mail_uid, self._mail_gid = ensure_mail_user()
        self._make_dirs()
        self._write_tls()
        self._write_users()
        self._write_map("recipient_access", self.recipient_access)
        self._write_dovecot_config()
        self._write_postfix_config()
        self._configured = True

    # Users and maps ----------------------------------------------------------------

    def add_user(self, address: str, password: str) -> None:
        """Create (or re-password) a mailbox; effective when this returns."""
        address = address.lower()
        if ":" in address + password or "\n" in address + password:
            raise ValueError("':' and newlines cannot be stored in a passwd-file")
        if not address.endswith("@" + MAIL_DOMAIN) or re.search(r"\s", address):
            raise ValueError(f"only plain @{MAIL_DOMAIN} addresses can get a mailbox")
        self.users[address] = password
        if not self._configured:
            return
        self._write_users()
        if self.dovecot_pid() is not None:
            self._wait_for_login(address, password)
        if self.postfix_pid() is not None:
            self.reload_postfix()

    def set_recipient_access(self, mapping: Mapping[str, str]) -> None:
        """Replace postfix's recipient access map (e.g.
        ``{"nobody@example.test": "550 5.1.1 no such user"}``) and reload."""
        self.recipient_access = {key.lower(): value for key, value in mapping.items()}
        if not self._configured:
            return
        self._write_map("recipient_access", self.recipient_access)
        if self.postfix_pid() is not None:
            self.reload_postfix()

    # dovecot ---------------------------------------------------------------------

    def dovecot_pid(self) -> int | None:
        return _running_pid(self.dovecot_run_dir / "master.pid", b"dovecot")

    def start_dovecot(self) -> None:
        """Start dovecot and wait until its listeners and sockets answer."""
        if self.dovecot_pid() is None:
            # A dead master may linger as a zombie under an init that reaps
            # lazily; dovecot would take its pid file for a running instance.
            (self.dovecot_run_dir / "master.pid").unlink(missing_ok=True)
            self._run(["dovecot", "-c", str(self.dovecot_config)], log=self.dovecot_log)
        context = self.client_ssl_context()
        checks: list[tuple[str, Callable[[], bool]]] = [
            ("IMAP", lambda: read_banner(self.host, self.imap_port).startswith(b"* OK")),
            ("IMAPS", lambda: read_banner(self.host, self.imaps_port, context).startswith(b"* OK")),
            ("POP3", lambda: read_banner(self.host, self.pop3_port).startswith(b"+OK")),
            ("POP3S", lambda: read_banner(self.host, self.pop3s_port, context).startswith(b"+OK")),
            ("LMTP socket", self.lmtp_socket.is_socket),
            ("auth socket", self.sasl_socket.is_socket),
        ]
        for what, check in checks:
            self._wait(check, f"dovecot {what}", self.dovecot_log)

    def stop_dovecot(self) -> None:
        """Stop dovecot (takes ~1 s: its master waits that long for the log process)."""
        pid = self.dovecot_pid()
        if pid is not None:
            # What `doveadm stop` does, minus its one-second polling steps.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(MailStackError):
                wait_until(lambda: not _pid_alive(pid), 10.0, "dovecot to exit")
        self._kill_leftovers(self._dovecot_processes())

    def _wait_for_login(self, address: str, password: str) -> None:
        # dovecot re-reads the passwd-file at most once a second, so a user
        # added right after another login is not known at once.
        argv = ["doveadm", "-c", str(self.dovecot_config), "auth", "test", address, password]
        self._wait(
            lambda: self._run(argv, check=False) == 0,
            f"dovecot to accept the password of {address}",
            self.dovecot_log,
        )

    def _dovecot_processes(self) -> set[int]:
        # Children are titled "dovecot-<instance_name>/<service>", the master
        # carries the config path: both are unique to this stack.
        title = f"dovecot-{self.instance_name}/".encode()
        config = str(self.dovecot_config).encode()
        found = set()
        for pid in _pids():
            cmdline = _read_proc(pid, "cmdline")
            if cmdline.startswith(title) or (b"dovecot" in cmdline and config in cmdline):
                found.add(pid)
        return found

    # postfix ---------------------------------------------------------------------

    def postfix_pid(self) -> int | None:
        return _running_pid(self.postfix_queue_dir / "pid" / "master.pid", b"master")

    def start_postfix(self) -> None:
        """Start postfix and wait until all three SMTP listeners greet."""
        if self.postfix_pid() is None:
            self._postfix("start")
        self._wait_postfix_ready()

    def stop_postfix(self) -> None:
        """Stop postfix; returns once its ports refuse connections."""
        pid = self.postfix_pid()
        if pid is not None:
            # What `postfix stop` does, minus its one-second polling steps.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(MailStackError):
                wait_until(lambda: not _pid_alive(pid), 10.0, "postfix master to exit")
        self._kill_leftovers(self._postfix_processes())
        for port in (self.mx_port, self.submission_port, self.smtps_port):
            wait_until(
                functools.partial(port_refuses, self.host, port),
                5.0,
                f"postfix port {port} to close",
            )

    def reload_postfix(self) -> None:
        """`postfix reload`, then wait until the listeners greet again."""
        self._postfix("reload")
        self._wait_postfix_ready()

    def _postfix(self, command: str) -> None:
        self._run(["postfix", "-c", str(self.postfix_config_dir), command], log=self.postfix_log)

    def _wait_postfix_ready(self) -> None:
        context = self.client_ssl_context()

        def greets(port: int, tls: ssl.SSLContext | None) -> bool:
            return read_banner(self.host, port, tls).startswith(b"220 ")

        for name, port, tls in (
            ("mx", self.mx_port, None),
            ("submission", self.submission_port, None),
            ("smtps", self.smtps_port, context),
        ):
            self._wait(
                functools.partial(greets, port, tls),
                f"postfix {name} port {port}",
                self.postfix_log,
            )

    def _postfix_processes(self) -> set[int]:
        # postfix hands its config dir to every daemon in MAIL_CONFIG.
        marker = b"\0MAIL_CONFIG=" + str(self.postfix_config_dir).encode() + b"\0"
        return {pid for pid in _pids() if marker in b"\0" + _read_proc(pid, "environ") + b"\0"}

    # Process helpers ---------------------------------------------------------------

    def _wait(self, check: Callable[[], bool], what: str, log: Path) -> None:
        try:
            wait_until(check, self.startup_timeout, what)
        except MailStackError as exc:
            raise MailStackError(f"{exc}\n--- tail of {log} ---\n{log_tail(log)}") from None

    def _run(self, argv: list[str], log: Path | None = None, check: bool = True) -> int:
        # Output goes to a file, never to a pipe: the daemons fork into the
        # background holding our stdout/stderr, so reading a pipe to EOF would
        # block until they exit.
        with self.commands_log.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            offset = out.tell()
            result = subprocess.run(
                [find_binary(argv[0]) or argv[0], *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=60,
                check=False,
            )
        if check and result.returncode != 0:
            with self.commands_log.open("rb") as out:
                out.seek(offset)
                detail = out.read().decode(errors="replace").strip()
            if log is not None:
                detail += f"\n--- tail of {log} ---\n{log_tail(log)}"
            raise MailStackError(f"{' '.join(argv)} failed ({result.returncode}): {detail}")
        return result.returncode

    def _kill_leftovers(self, pids: Iterable[int]) -> None:
        remaining = set(pids) - {os.getpid()}
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(MailStackError):
            wait_until(
                lambda: not any(_pid_alive(pid) for pid in remaining),
                5.0,
                "killed processes to exit",
            )

    # Configuration writers -----------------------------------------------------------

    def _make_dirs(self) -> None:
        if self._private_spool:
            # exist_ok=False: never adopt a directory someone else prepared.
            self.spool_dir.mkdir(mode=0o711)
            with contextlib.suppress(FileExistsError):
                (self.base_dir / "spool").symlink_to(self.spool_dir)
        else:
            self.spool_dir.mkdir(mode=0o711, exist_ok=True)
        os.chmod(self.spool_dir, 0o711)
        for directory in (self.ca_pem_path.parent, self.dovecot_dir, self.postfix_config_dir):
            directory.mkdir(mode=0o755, exist_ok=True)
        (self.dovecot_dir / "state").mkdir(mode=0o750, exist_ok=True)
        for directory in (self.mail_root, self.sieve_dir):
            # lmtp runs as the mail user and caches the compiled script next to it.
            directory.mkdir(mode=0o750, exist_ok=True)
            os.chown(directory, self._mail_uid, self._mail_gid)
        # dovecot puts its sockets into postfix's queue, possibly before postfix
        # ever ran; postfix-script creates the rest of the queue at start.
        postfix = pwd.getpwnam("postfix")
        self.postfix_queue_dir.mkdir(mode=0o755, exist_ok=True)
        private = self.postfix_queue_dir / "private"
        private.mkdir(mode=0o700, exist_ok=True)
        os.chown(private, postfix.pw_uid, grp.getgrnam("root").gr_gid)
        self.postfix_data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.postfix_data_dir, postfix.pw_uid, postfix.pw_gid)

    def _write_tls(self) -> None:
        self._ca.cert_pem.write_to_path(str(self.ca_pem_path))
        server = self._ca.issue_cert("localhost", self.host, "mx.example.test")
        server.private_key_pem.write_to_path(str(self.key_path))
        os.chmod(self.key_path, 0o600)
        self.cert_path.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
        backdate(self.ca_pem_path, self.key_path, self.cert_path)

    def _write_users(self) -> None:
        # Empty uid/gid/home fields fall back to mail_uid/mail_gid/mail_home.
        lines = [
            f"{address}:{{PLAIN}}{password}::::::\n"
            for address, password in sorted(self.users.items())
        ]
        previous = self.passwd_file.stat().st_mtime if self.passwd_file.exists() else None
        _write_file(self.passwd_file, "".join(lines), mode=0o600)
        if previous is not None:
            # dovecot spots changes by whole-second mtime or by size: a rewrite
            # within the same second must still move the mtime.
            stamp = max(self.passwd_file.stat().st_mtime, int(previous) + 1)
            os.utime(self.passwd_file, (stamp, stamp))
        self._write_map("virtual_mailboxes", dict.fromkeys(self.users, "OK"))

    def _write_map(self, name: str, mapping: Mapping[str, str]) -> None:
        for key, value in mapping.items():
            if not key or re.search(r"\s", key) or "\n" in value:
                raise ValueError(f"bad postfix map entry {key!r}: {value!r}")
        text = "".join(f"{key} {value}\n" for key, value in sorted(mapping.items()))
        _write_file(self.postfix_config_dir / name, text)

    def _write_dovecot_config(self) -> None:
        sieve_script = self.sieve_dir / "junk.sieve"
        _write_file(sieve_script, (TEMPLATE_DIR / "junk.sieve").read_text())
        _write_file(
            self.dovecot_config,
            render_template(
                "dovecot.conf",
                {
                    "host": self.host,
                    "instance_name": self.instance_name,
                    "run_dir": self.dovecot_run_dir,
                    "state_dir": self.dovecot_dir / "state",
                    "log_path": self.dovecot_log,
                    "mail_debug": "yes" if self.mail_debug else "no",
                    "cert_path": self.cert_path,
                    "key_path": self.key_path,
                    "mail_uid": self._mail_uid,
                    "mail_gid": self._mail_gid,
                    "mail_root": self.mail_root,
                    "passwd_file": self.passwd_file,
                    "sieve_before": sieve_script,
                    "sasl_socket": self.sasl_socket,
                    "lmtp_socket": self.lmtp_socket,
                    "imap_port": self.imap_port,
                    "imaps_port": self.imaps_port,
                    "pop3_port": self.pop3_port,
                    "pop3s_port": self.pop3s_port,
                },
            ),
        )

    def _write_postfix_config(self) -> None:
        values = {
            "host": self.host,
            "instance_name": self.instance_name,
            "config_dir": self.postfix_config_dir,
            "queue_dir": self.postfix_queue_dir,
            "data_dir": self.postfix_data_dir,
            "log_path": self.postfix_log,
            "log_dir": self.base_dir,
            "cert_path": self.cert_path,
            "key_path": self.key_path,
            "mx_port": self.mx_port,
            "submission_port": self.submission_port,
            "smtps_port": self.smtps_port,
        }
        for name in ("main.cf", "master.cf"):
            _write_file(self.postfix_config_dir / name, render_template(name, values))
