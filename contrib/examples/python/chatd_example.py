#!/usr/bin/env python3
"""The smallest useful client of chatd's JSON-RPC API, with nothing but Python's standard library.

chatd speaks JSON-RPC 2.0 on a Unix socket, one JSON message per line. This script does what
most clients do: it asks for the daemon's status, sends a message, then subscribes to events
and prints every message received, until Ctrl-C.

    python3 chatd_example.py [--socket PATH] [--since CURSOR] [TO TEXT]

It is written to be read. For a reusable library (errors with codes, several calls, any
method) see contrib/chatd_client.py; for every method, docs/API.md.
"""

import argparse
import json
import os
import socket
import stat
import struct
import sys


def default_socket_path():
    """Where chatd listens unless told otherwise (the same rules as chatd and chatctl)."""
    if os.environ.get("CHATD_SOCKET"):
        return os.environ["CHATD_SOCKET"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "chatd", "chatd.sock")
    temp = os.environ.get("TMPDIR", "/tmp")
    return os.path.join(temp, "chatd-%d" % os.getuid(), "chatd.sock")


def check_socket(path, sock=None):
    """Refuses a socket another local user could have planted, before anything is sent: its
    directory (lstat: no symbolic link) must be ours and 0700, the socket ours, and on Linux
    the process serving it (SO_PEERCRED) must run as us. (Elsewhere Python cannot ask for the
    peer's uid; the directory check is what keeps other users out.)"""
    def refuse(what, problem):
        raise RuntimeError("refusing to talk to chatd's socket at %s: %s %s; nothing was sent"
                           % (path, what, problem))
    if sock is not None:
        if hasattr(socket, "SO_PEERCRED"):
            _pid, uid, _gid = struct.unpack("iII", sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII")))
            if uid != os.geteuid():
                refuse(path, "is served by uid %d, not by us" % uid)
        return
    for what, is_dir in ((os.path.dirname(path) or ".", True), (path, False)):
        try:
            st = os.lstat(what)
        except FileNotFoundError:
            return  # Not there: connect() says so.
        if stat.S_ISLNK(st.st_mode):
            refuse(what, "is a symbolic link")
        if not (stat.S_ISDIR if is_dir else stat.S_ISSOCK)(st.st_mode):
            refuse(what, "is not a directory" if is_dir else "is not a socket")
        if st.st_uid != os.geteuid():
            refuse(what, "belongs to uid %d, not to us" % st.st_uid)
        if is_dir and st.st_mode & 0o077:
            refuse(what, "is open to other users (mode %04o)" % (st.st_mode & 0o7777))


class Chatd:
    """One connection to chatd."""

    def __init__(self, path):
        check_socket(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as e:
            raise ConnectionError("cannot talk to chatd at %s: %s" % (path, e.strerror)) from e
        check_socket(path, self.sock)
        self.lines = self.sock.makefile("r", encoding="utf-8")
        self.next_id = 1
        # Notifications (events) that arrive while we wait for an answer, kept for later.
        self.early = []

    def read(self):
        line = self.lines.readline()
        if not line:
            raise ConnectionError("chatd closed the connection")
        return json.loads(line)

    def call(self, method, **params):
        """Sends a request and waits for its answer: the result, or an error raised."""
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        self.sock.sendall((json.dumps(request) + "\n").encode("utf-8"))
        while True:
            message = self.read()
            if "id" not in message:
                self.early.append(message)
            elif "error" in message:
                error = message["error"]
                reason = "%s (code %s)" % (error["message"], error["code"])
                raise RuntimeError("%s failed: %s" % (method, reason))
            else:
                return message["result"]

    def events(self):
        """Yields the events of this connection's subscription, forever."""
        while True:
            message = self.early.pop(0) if self.early else self.read()
            # This connection has one subscription; with several, params.subscription tells
            # them apart (it is what events.subscribe returned).
            if message.get("method") == "events.event":
                yield message["params"]["result"]


def printable(text):
    """Peer text with control characters escaped, so that a message cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main():
    parser = argparse.ArgumentParser(description="Status, send, and watch for messages.")
    parser.add_argument("--socket", default=default_socket_path(), help="chatd's socket")
    parser.add_argument("--since", type=int, help="first replay the events after this cursor")
    parser.add_argument("to", nargs="?", help="send TEXT to this alias, @handle or address")
    parser.add_argument("text", nargs="?", help="the message to send")
    args = parser.parse_args()
    if (args.to is None) != (args.text is None):
        parser.error("give both TO and TEXT, or neither")

    chatd = Chatd(args.socket)

    status = chatd.call("daemon.status")
    state, relay = status["state"], status["connection"]
    print("chatd %s: %s, relay %s" % (status["version"], state, relay), flush=True)

    if args.to is not None:
        sent = chatd.call("messages.send", to=args.to, text=args.text)
        print("sent %s to %s" % (sent["message_id"], sent["conversation"]), flush=True)

    # With `since`, chatd first replays the events it kept after that cursor: print the cursor
    # of each event you handle, and pass the last one next time to miss nothing.
    params = {} if args.since is None else {"since": args.since}
    chatd.call("events.subscribe", **params)
    print("watching for messages (Ctrl-C to stop)", flush=True)
    for event in chatd.events():
        if event["kind"] == "message.received":
            message = event["message"]
            who, text = printable(message["conversation"]), printable(message["text"])
            print("[%d] %s: %s" % (event["cursor"], who, text), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, RuntimeError, ValueError) as e:
        print("chatd_example: %s" % e, file=sys.stderr)
        sys.exit(1)
