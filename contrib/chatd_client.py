#!/usr/bin/env python3
"""A client of chatd's local JSON-RPC API, using only the Python 3 standard library.

chatd speaks JSON-RPC 2.0 over a Unix socket, one JSON message per line. This module is both a
small library and a command-line tool:

    from chatd_client import ChatdClient, ChatdError

    with ChatdClient() as chatd:
        print(chatd.call("daemon.status"))
        chatd.call("messages.send", to="alice", text="hi")
        for event in chatd.subscribe():
            print(event["kind"], event)

    python3 chatd_client.py send alice "hi"          (TEXT `-` reads stdin)
    python3 chatd_client.py watch [--since CURSOR]
    python3 chatd_client.py call messages.history '{"conversation": "alice"}'
    python3 chatd_client.py status

The socket is found as chatd and chatctl find it: $CHATD_SOCKET, else
$XDG_RUNTIME_DIR/chatd/chatd.sock, else <temp dir>/chatd-<uid>/chatd.sock (the temp dir is
$TMPDIR, else /tmp). `--socket PATH` overrides it.

Before it sends anything, the client checks who serves the socket, as chatctl does: the
socket's directory (looked at with lstat, so a symbolic link is refused) must be ours and closed
to group and others (mode 0700 or stricter), the socket file must be a socket and ours, and on
Linux the process serving it must run as our uid (SO_PEERCRED). A socket that fails raises
ChatdError and gets nothing: another local user may have planted it at the default path. On
other systems (macOS, the BSDs) Python's standard library cannot ask for the peer's uid, so
only the lstat checks are made there; they suffice, since only we (or root) can create a socket
in a 0700 directory of ours.

Errors from chatd raise ChatdError with its code (a JSON-RPC code, or one of chatd's domain
codes such as 1010 not_found), kind (the stable snake_case name, for domain errors) and message.
"""

import argparse
import itertools
import json
import os
import socket
import stat
import struct
import sys

__all__ = [
    "ChatdClient",
    "ChatdError",
    "check_socket_path",
    "check_socket_peer",
    "default_socket_path",
]

SOCKET_ENV = "CHATD_SOCKET"
SOCKET_FILE = "chatd.sock"
NOTIFICATION = "events.event"


def default_socket_path():
    """The socket path chatd uses by default (the same rules as the Rust `api::paths`)."""
    path = os.environ.get(SOCKET_ENV)
    if path:
        return path
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "chatd", SOCKET_FILE)
    # Rust's std::env::temp_dir() on Unix: $TMPDIR, else /tmp.
    tmp = os.environ.get("TMPDIR")
    if tmp is None:
        tmp = "/tmp"
    return os.path.join(tmp, "chatd-%d" % os.getuid(), SOCKET_FILE)


class ChatdError(Exception):
    """An error answer from chatd, or a broken connection (code None)."""

    def __init__(self, code, message, kind=None, data=None):
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.message = message
        self.data = data

    def __str__(self):
        if self.code is None:
            return self.message
        return "%s (code %s)" % (self.message, self.code)


def _untrusted(socket_path, path, problem):
    return ChatdError(
        None,
        "refusing to talk to chatd's socket at %s: %s %s; nothing was sent"
        % (socket_path, path, problem),
    )


def check_socket_path(socket_path):
    """Checks the socket's directory and the socket file (see the module documentation).

    Raises ChatdError if either fails; a missing directory or socket is left to connect()."""
    ours = os.geteuid()
    directory = os.path.dirname(socket_path) or "."
    for path, want_dir in ((directory, True), (socket_path, False)):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _untrusted(socket_path, path, "cannot be inspected: %s" % e) from e
        if stat.S_ISLNK(st.st_mode):
            raise _untrusted(socket_path, path, "is a symbolic link")
        if want_dir and not stat.S_ISDIR(st.st_mode):
            raise _untrusted(socket_path, path, "is not a directory")
        if not want_dir and not stat.S_ISSOCK(st.st_mode):
            raise _untrusted(socket_path, path, "is not a socket")
        if st.st_uid != ours:
            raise _untrusted(
                socket_path,
                path,
                "belongs to uid %d, not to us (uid %d): another user may have planted it"
                % (st.st_uid, ours),
            )
        if want_dir and st.st_mode & 0o077:
            raise _untrusted(
                socket_path,
                path,
                "is open to other users (mode %04o); chatd's socket directory must be 0700"
                % (st.st_mode & 0o7777),
            )


def check_socket_peer(sock, socket_path):
    """On Linux, checks that the process serving `sock` runs as our uid (SO_PEERCRED)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return  # Not Linux: see the module documentation.
    ucred = struct.Struct("iII")  # struct ucred: pid, uid, gid
    try:
        pid, uid, _gid = ucred.unpack(sock.getsockopt(socket.SOL_SOCKET, peercred, ucred.size))
    except OSError as e:
        raise _untrusted(socket_path, socket_path, "has a peer of unknown uid: %s" % e) from e
    if uid != os.geteuid():
        raise _untrusted(
            socket_path,
            socket_path,
            "is served by uid %d (pid %d), not by us (uid %d)" % (uid, pid, os.geteuid()),
        )


class ChatdClient:
    """One connection to chatd: calls one at a time, notifications kept until read."""

    def __init__(self, path=None, timeout=None):
        self.path = path or default_socket_path()
        check_socket_path(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.path)
        except OSError as e:
            self._sock.close()
            raise ChatdError(None, "cannot reach chatd at %s: %s" % (self.path, e)) from e
        try:
            check_socket_peer(self._sock, self.path)
        except ChatdError:
            self._sock.close()
            raise
        self._reader = self._sock.makefile("rb")
        self._ids = itertools.count(1)
        self._notifications = []

    def close(self):
        """Closes the connection (ending its subscriptions)."""
        self._reader.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, **params):
        """Calls `method` with named params and returns its result; raises ChatdError."""
        request_id = next(self._ids)
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self._send(request)
        while True:
            message = self._read()
            if "method" in message and "id" not in message:
                self._notifications.append(message)
                continue
            if message.get("id") != request_id:
                raise ChatdError(None, "an answer to another request: %r" % (message,))
            if "error" in message:
                error = message["error"]
                data = error.get("data")
                kind = data.get("kind") if isinstance(data, dict) else None
                raise ChatdError(error.get("code"), error.get("message", ""), kind, data)
            return message.get("result")

    def subscribe(self, since=None):
        """Subscribes to events and yields each (a dict with `cursor` and `kind`), forever.

        With `since` (the cursor of the last event handled), the retained events after it come
        first, so nothing is missed across reconnects.
        """
        params = {} if since is None else {"since": since}
        subscription = self.call("events.subscribe", **params)
        while True:
            if self._notifications:
                message = self._notifications.pop(0)
            else:
                message = self._read()
                if "method" not in message:
                    continue
            params = message.get("params") or {}
            if message.get("method") == NOTIFICATION and params.get("subscription") == subscription:
                yield params.get("result")

    def _send(self, message):
        line = json.dumps(message, separators=(",", ":")) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
        except OSError as e:
            raise ChatdError(None, "connection to chatd failed: %s" % e) from e

    def _read(self):
        try:
            line = self._reader.readline()
        except OSError as e:
            raise ChatdError(None, "connection to chatd failed: %s" % e) from e
        if not line:
            raise ChatdError(None, "chatd closed the connection")
        try:
            return json.loads(line)
        except ValueError as e:
            raise ChatdError(None, "chatd sent something that is not JSON: %r" % line) from e


def _print(value):
    print(json.dumps(value, ensure_ascii=False), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A small client of chatd's JSON-RPC API.")
    parser.add_argument("--socket", help="chatd's socket (default: as chatd finds it)")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="send a text message")
    send.add_argument("target", help="an alias, @name or chat1... address")
    send.add_argument("text", help="the text; - reads stdin")
    watch = commands.add_parser("watch", help="print every event as one JSON line")
    watch.add_argument("--since", type=int, help="first replay retained events after this cursor")
    call = commands.add_parser("call", help="call any method and print its result")
    call.add_argument("method")
    call.add_argument("params", nargs="?", default="{}", help="params as a JSON object")
    commands.add_parser("status", help="print daemon.status")
    args = parser.parse_args(argv)

    try:
        with ChatdClient(args.socket) as chatd:
            if args.command == "send":
                text = args.text
                if text == "-":
                    # As chatctl: all of stdin, one trailing newline dropped.
                    text = sys.stdin.read()
                    if text.endswith("\n"):
                        text = text[:-1]
                result = chatd.call("messages.send", to=args.target, text=text)
                print(result["message_id"], flush=True)
            elif args.command == "watch":
                for event in chatd.subscribe(since=args.since):
                    _print(event)
            elif args.command == "call":
                _print(chatd.call(args.method, **json.loads(args.params)))
            else:
                _print(chatd.call("daemon.status"))
    except ChatdError as e:
        print("chatd_client: %s" % e, file=sys.stderr)
        return 3 if e.code is None else 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
