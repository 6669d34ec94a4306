#!/usr/bin/env node
// The smallest useful client of chatd's JSON-RPC API, in Node.js with no packages.
//
// chatd speaks JSON-RPC 2.0 on a Unix socket, one JSON message per line. This script does what
// most clients do: it asks for the daemon's status, sends a message, then subscribes to events
// and prints every message received, until Ctrl-C.
//
//     node chatd_example.js [--socket PATH] [--since CURSOR] [TO TEXT]
//
// It is written to be read; docs/API.md documents every method.

'use strict';

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { parseArgs } = require('node:util');

// Where chatd listens unless told otherwise (the same rules as chatd and chatctl).
function defaultSocketPath() {
  if (process.env.CHATD_SOCKET) {
    return process.env.CHATD_SOCKET;
  }
  if (process.env.XDG_RUNTIME_DIR) {
    return path.join(process.env.XDG_RUNTIME_DIR, 'chatd', 'chatd.sock');
  }
  const temp = process.env.TMPDIR ?? '/tmp';
  return path.join(temp, `chatd-${os.userInfo().uid}`, 'chatd.sock');
}

// Before sending anything, check that the socket is ours alone, as chatctl does: its directory
// (lstat, so a symbolic link is refused) belongs to us and is closed to group and others (0700),
// and the socket file is a socket that belongs to us. Otherwise another local user may have
// planted it (say at /tmp/chatd-UID/chatd.sock) to read the passphrase and the messages sent.
// Node cannot ask for the uid of the process serving a socket (SO_PEERCRED) without a native
// addon, so that check of chatctl's is not made here; the directory check is what counts, as
// only we (or root) can create a socket in a 0700 directory of ours.
function checkSocket(socketPath) {
  const uid = process.geteuid();
  const refuse = (p, problem) =>
    fail(`refusing to talk to chatd's socket at ${socketPath}: ${p} ${problem}; nothing was sent`);
  for (const [p, isDir] of [[path.dirname(socketPath), true], [socketPath, false]]) {
    let st;
    try {
      st = fs.lstatSync(p);
    } catch (error) {
      if (error.code === 'ENOENT') {
        return; // Not there: connecting fails with the usual error.
      }
      refuse(p, `cannot be inspected: ${error.message}`);
    }
    if (st.isSymbolicLink()) {
      refuse(p, 'is a symbolic link');
    }
    if (isDir ? !st.isDirectory() : !st.isSocket()) {
      refuse(p, isDir ? 'is not a directory' : 'is not a socket');
    }
    if (st.uid !== uid) {
      refuse(p, `belongs to uid ${st.uid}, not to us (uid ${uid})`);
    }
    if (isDir && (st.mode & 0o077) !== 0) {
      refuse(p, `is open to other users (mode ${(st.mode & 0o7777).toString(8)})`);
    }
  }
}

// One connection to chatd. `call` sends a request and resolves with its result (or rejects
// with its error); every `events.event` notification goes to `onEvent`.
class Chatd {
  constructor(socketPath, onEvent) {
    this.nextId = 1;
    this.waiting = new Map(); // request id -> { resolve, reject }
    checkSocket(socketPath);
    this.socket = net.createConnection({ path: socketPath });
    this.socket.on('error', (error) => {
      fail(`cannot talk to chatd at ${socketPath}: ${error.message}`);
    });
    this.socket.on('close', () => fail('chatd closed the connection'));
    const lines = readline.createInterface({ input: this.socket, crlfDelay: Infinity });
    lines.on('line', (line) => {
      const message = JSON.parse(line);
      if (message.id === undefined) {
        // This connection has one subscription; with several, params.subscription tells them
        // apart (it is what events.subscribe returned).
        if (message.method === 'events.event') {
          onEvent(message.params.result);
        }
        return;
      }
      const waiter = this.waiting.get(message.id);
      if (!waiter) {
        return;
      }
      this.waiting.delete(message.id);
      const { resolve, reject } = waiter;
      if (message.error) {
        reject(new Error(`${message.error.message} (code ${message.error.code})`));
      } else {
        resolve(message.result);
      }
    });
  }

  call(method, params = {}) {
    const id = this.nextId++;
    const request = { jsonrpc: '2.0', id, method, params };
    this.socket.write(JSON.stringify(request) + '\n');
    return new Promise((resolve, reject) => {
      this.waiting.set(id, {
        resolve,
        reject: (error) => reject(new Error(`${method} failed: ${error.message}`)),
      });
    });
  }
}

// Peer text with control characters escaped, so that a message cannot drive the terminal.
function printable(text) {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => JSON.stringify(c).slice(1, -1));
}

function fail(why) {
  console.error(`chatd_example: ${why}`);
  process.exit(1);
}

async function main() {
  const { values, positionals } = parseArgs({
    options: {
      socket: { type: 'string', default: defaultSocketPath() },
      since: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 0 && positionals.length !== 2) {
    fail('usage: node chatd_example.js [--socket PATH] [--since CURSOR] [TO TEXT]');
  }

  const chatd = new Chatd(values.socket, (event) => {
    if (event.kind === 'message.received') {
      const { conversation, text } = event.message;
      console.log(`[${event.cursor}] ${printable(conversation)}: ${printable(text)}`);
    }
  });

  const status = await chatd.call('daemon.status');
  console.log(`chatd ${status.version}: ${status.state}, relay ${status.connection}`);

  if (positionals.length === 2) {
    const [to, text] = positionals;
    const sent = await chatd.call('messages.send', { to, text });
    console.log(`sent ${sent.message_id} to ${sent.conversation}`);
  }

  // With `since`, chatd first replays the events it kept after that cursor: print the cursor
  // of each event you handle, and pass the last one next time to miss nothing. (Cursors are
  // microseconds since 1970, well within a JavaScript number.)
  const params = values.since === undefined ? {} : { since: Number(values.since) };
  await chatd.call('events.subscribe', params);
  console.log('watching for messages (Ctrl-C to stop)');
}

main().catch((error) => fail(error.message));
